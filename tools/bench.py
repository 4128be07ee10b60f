"""Speed of quantune-iree builds against FP32 and onnxruntime, measured side by side in one run.

Host: IREE builds (FP32 under several flag sets, to find IREE's best FP32 build; full INT8 and
any mixed plans with the default flags, and INT8 under the `iree` preset) interleaved with
onnxruntime FP32 and its static INT8 (QDQ, per-channel s8 weights) with u8 and with s8
activations. Prints medians and ratios to the best IREE FP32 build and to onnxruntime's u8 INT8.

Cortex-A53 (with --a53est PATH/a53est.sh, e.g. ../shared/a53est/a53est.sh): the same builds for
cortex-a53 run once each under qemu with an A53 timing model. These are estimates of compute
cycles (no caches, no memory), for ratios between builds, not latencies.

Token-input models (sentence encoders): --calib sentences.txt --tokenizer tokenizer.json
--seq-len S; onnxruntime is then skipped (its static quantization here feeds one input).

Usage: python tools/bench.py MODEL.onnx --calib DIR [--plan PLAN.json ...] [--a53est SH]
           [--preprocess imagenet] [--reps 20] [--threads 2] [--calib-limit 32] [--no-ort]
           [--tokenizer JSON --seq-len S]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np
from devset import ort_quantize_static
from quantune_iree.algo.planning import build_plan
from quantune_iree.backend.a53est import A53Estimator
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.targets import CHANNELS_LAST_FLAG, get_target
from quantune_iree.io.dataset import PRESETS, iter_samples
from quantune_iree.io.text import TextSource, token_inputs
from quantune_iree.ir.importer import import_onnx
from quantune_iree.model.graph import ImportedModel
from quantune_iree.model.plan import Plan, QuantConfig, check_plan_matches, plan_from_json
from quantune_iree.model.target import Target
from quantune_iree.stages.fp32_pass import run_fp32_pass
from quantune_iree.stages.speed_probe import time_calls

_DT = ("--iree-opt-data-tiling", "--iree-llvmcpu-enable-ukernels=mmt4d")


def host_targets() -> dict[str, Target]:
    """Flag sets for the FP32 builds: IREE's defaults, IREE's channels-last (with and without
    data tiling), and quantune's default (the speed preset)."""
    return {
        "iree": get_target("host", preset="iree"),
        "iree-nhwc": get_target("host", [CHANNELS_LAST_FLAG], preset="iree"),
        "iree-nhwc-dt": get_target("host", [CHANNELS_LAST_FLAG, *_DT], preset="iree"),
        "default": get_target("host"),
    }


def a53_targets() -> dict[str, Target]:
    """cortex-a53: the default (speed) flags, and the same without the channels-last pass (the
    speed preset before issue 12: IREE's im2col on NCHW)."""
    speed = get_target(cpu="cortex-a53")
    return {"default": speed, "nchw": dataclasses.replace(speed, channels_last=False)}


def ort_sessions(path: str, calib: list[np.ndarray], input_name: str, threads: int) -> dict:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Its idle workers spin by default, stealing a core from whatever is timed next.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    cpu = ["CPUExecutionProvider"]
    u8 = ort_quantize_static(path, input_name, calib)
    s8 = ort_quantize_static(path, input_name, calib, activation_type=QuantType.QInt8)
    return {
        "ort fp32": ort.InferenceSession(path, opts, providers=cpu),
        "ort int8 u8-act": ort.InferenceSession(u8, opts, providers=cpu),
        "ort int8 s8-act": ort.InferenceSession(s8, opts, providers=cpu),
    }


def host_table(
    model: ImportedModel, builds: dict[str, Plan | None], x: list[np.ndarray], args
) -> str:  # noqa: ANN001
    runners = {}
    for pname, target in host_targets().items():
        for bname, plan in builds.items():
            extra = bname == "fp32" or (bname == "int8" and pname == "iree")
            if pname != "default" and not extra:
                continue
            try:
                runners[f"{bname} / {pname}"] = Engine(args.model_for(plan), target).load(
                    plan, what="bench"
                )
            except Exception as exc:  # a flag set the backend cannot compile is reported
                print(f"{bname} / {pname}: compile failed: {str(exc).splitlines()[0][:120]}")
    calls = {name: (lambda r=r: r(x)) for name, r in runners.items()}
    name0 = model.inputs[0].name
    if not args.no_ort and len(model.inputs) > 1:
        print("onnxruntime skipped: its static quantization here feeds one input")
    elif not args.no_ort:
        calib = [s[0] for s in args.samples]
        for name, sess in ort_sessions(args.model, calib, name0, args.threads).items():
            calls[name] = lambda s=sess: s.run(None, {name0: x[0]})
    med = time_calls(calls, args.reps)
    fp32 = {n: v for n, v in med.items() if n.startswith("fp32 /")}
    best_name = min(fp32, key=fp32.__getitem__)
    best = fp32[best_name]
    ort_u8 = med.get("ort int8 u8-act")
    lines = [
        f"Host, {args.reps} interleaved reps, median ms; IREE local-task, onnxruntime "
        f"{args.threads} threads. Best IREE FP32 build: {best_name}.",
        "",
        "| build / flags | median ms | speed-up vs best IREE FP32 | vs ort int8 u8-act |",
        "|---|---|---|---|",
    ]
    for n, v in sorted(med.items(), key=lambda kv: kv[1]):
        vs_ort = f"{ort_u8 / v:.2f}x" if ort_u8 else "-"
        lines.append(f"| {n} | {v:.2f} | {best / v:.2f}x | {vs_ort} |")
    return "\n".join(lines)


def a53_table(
    model: ImportedModel, builds: dict[str, Plan | None], x: list[np.ndarray], sh: str, args
) -> str:  # noqa: ANN001
    names, vmfbs, flags = [], [], ()
    for pname, target in a53_targets().items():
        for bname, plan in builds.items():
            if pname == "default" or bname == "fp32":
                names.append(f"{bname} / {pname}")
                vmfbs.append(Engine(args.model_for(plan), target).build(plan))
                flags = target.runtime_flags
    est = A53Estimator(sh).cycles(vmfbs, model.function, x, flags, len(model.outputs))
    cycles = dict(zip(names, est, strict=True))
    base = cycles["fp32 / default"]
    lines = [
        "Cortex-A53 estimate (a53sim: compute cycles, one thread, no caches or memory; for ratios "
        "between builds, not latencies).",
        "",
        "| build / flags | M cycles (estimate) | vs fp32 / default |",
        "|---|---|---|",
    ]
    for n, v in sorted(cycles.items(), key=lambda kv: kv[1]):
        lines.append(f"| {n} | {v / 1e6:.1f} | {v / base:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--plan", action="append", default=[], help="a mixed plan (repeatable)")
    ap.add_argument("--a53est", metavar="SH", help="a53est.sh: add Cortex-A53 estimates")
    ap.add_argument("--preprocess", default="imagenet", choices=sorted(PRESETS))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-limit", type=int, default=32)
    ap.add_argument("--no-ort", action="store_true", help="skip onnxruntime")
    ap.add_argument("--no-host", action="store_true", help="skip the host timings")
    ap.add_argument("--tokenizer", help="tokenizer.json: --calib is a .txt of sentences")
    ap.add_argument("--seq-len", type=int, default=64, help="with --tokenizer: token inputs [1, S]")
    args = ap.parse_args()

    shapes = {n: [1, args.seq_len] for n in token_inputs(args.model)} if args.tokenizer else None
    source = TextSource(args.tokenizer) if args.tokenizer else PRESETS[args.preprocess]
    model = import_onnx(args.model, shapes)
    engine = Engine(model, get_target("host"))
    equalized: dict[tuple, ImportedModel] = {}

    def model_for(plan: Plan | None) -> ImportedModel:
        """The model a plan applies to: its equalization re-applied to the ONNX graph."""
        if plan is None or not plan.equalization:
            return model
        if plan.equalization not in equalized:
            equalized[plan.equalization] = import_onnx(args.model, shapes, plan.equalization)
        return equalized[plan.equalization]

    args.model_for = model_for
    args.samples = list(iter_samples(args.calib, model.inputs, source, args.calib_limit))
    stats = run_fp32_pass(model, iter(args.samples), layers=engine.layers, reference_elements=None)
    builds: dict[str, Plan | None] = {
        "fp32": None,
        "int8": build_plan(model.sha256, engine.layers, stats, QuantConfig()),
    }
    for path in args.plan:
        plan = plan_from_json(open(path).read(), path)
        check_plan_matches(plan, engine.layers, model.sha256, path)
        name = os.path.basename(path).removesuffix(".json").removesuffix(".plan")
        builds[f"{name} ({len(plan.fp32_layers)} fp32)"] = plan
    print(f"{os.path.basename(args.model)}: {len(engine.layers)} layers")
    if not args.no_host:
        print(host_table(model, builds, args.samples[0], args))
    if args.a53est:
        print()
        print(a53_table(model, builds, args.samples[0], args.a53est, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

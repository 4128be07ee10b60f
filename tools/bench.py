"""Side-by-side latency of FP32, full INT8 and a mixed plan (IREE, host CPU) against ONNX Runtime
FP32 and ORT static INT8 (QDQ, per-channel), interleaved in one run; prints medians and ratios.

Usage: python tools/bench.py MODEL.onnx --calib DIR [--plan PLAN.json] [--preprocess imagenet]
                             [--reps 20] [--threads 2] [--calib-limit 32] [--no-ort]
Each build is measured at IREE's default flags, channels-last, and quantune's `speed` preset
(targets.py: channels-last + im2col + data tiling + microkernels). A preset that does not
compile is reported and skipped.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from devset import ort_quantize_static
from quantune_iree.algo.planning import build_plan
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.targets import CHANNELS_LAST_FLAG, get_target
from quantune_iree.io.dataset import PRESETS, iter_samples
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.model.plan import QuantConfig, check_plan_matches, plan_from_json
from quantune_iree.stages.fp32_pass import run_fp32_pass
from quantune_iree.stages.speed_probe import time_calls

PRESET_TARGETS = {
    "default": get_target("host"),
    "nhwc": get_target("host", [CHANNELS_LAST_FLAG]),
    "speed": get_target("host", preset="speed"),
}


def _ort_sessions(path: str, calib: list[np.ndarray], input_name: str, threads: int):  # noqa: ANN202
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    qdq = ort_quantize_static(path, input_name, calib)
    return {
        "ort-fp32": ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]),
        "ort-int8-qdq": ort.InferenceSession(qdq, opts, providers=["CPUExecutionProvider"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--plan", action="append", default=[], help="a mixed plan (repeatable)")
    ap.add_argument("--preprocess", default="imagenet", choices=sorted(PRESETS))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-limit", type=int, default=32)
    ap.add_argument("--no-ort", action="store_true", help="skip onnxruntime")
    args = ap.parse_args()

    model = import_onnx(args.model)
    layers = layer_table(model)
    samples = list(
        iter_samples(args.calib, model.inputs, PRESETS[args.preprocess], args.calib_limit)
    )
    stats = run_fp32_pass(model, iter(samples), layers=layers, reference_elements=None)
    int8_plan = build_plan(model.sha256, layers, stats, QuantConfig())
    builds = {"fp32": None, "int8": int8_plan}
    for path in args.plan:
        plan = plan_from_json(open(path).read(), path)
        check_plan_matches(plan, layers, model.sha256, path)
        name = os.path.basename(path).removesuffix(".json").removesuffix(".plan")
        builds[f"mixed:{name}({len(plan.fp32_layers)} fp32)"] = plan

    runners = {}
    for bname, plan in builds.items():
        for pname, target in PRESET_TARGETS.items():
            try:
                runners[f"{bname}/{pname}"] = Engine(model, target).load(plan)
            except Exception as exc:  # a preset the backend cannot compile is reported, not fatal
                print(f"{bname}/{pname}: compile failed: {str(exc).splitlines()[0][:120]}")
    x = samples[0]
    calls = {name: (lambda r=r: r(x)) for name, r in runners.items()}
    name0 = model.inputs[0].name
    ort_sessions = (
        {}
        if args.no_ort
        else _ort_sessions(args.model, [s[0] for s in samples], name0, args.threads)
    )
    for name, sess in ort_sessions.items():
        calls[name] = lambda s=sess: s.run(None, {name0: x[0]})
    med = time_calls(calls, args.reps)
    best_fp32 = min(v for n, v in med.items() if n.startswith("fp32/"))
    best_name = next(n for n, v in med.items() if v == best_fp32 and n.startswith("fp32/"))
    ort_cols = [c for c in ("ort-fp32", "ort-int8-qdq") if c in med]
    print(
        f"speed = how many times faster than the best IREE FP32 build ({best_name}); "
        f"{args.reps} interleaved reps, median; IREE local-task, ORT {args.threads} threads"
    )
    print(
        "| build | median ms | vs best IREE fp32 | "
        + " | ".join(f"vs {c}" for c in ort_cols)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(ort_cols))
    for n, v in sorted(med.items(), key=lambda kv: kv[1]):
        cols = "".join(f" {med[c] / v:.2f}x |" for c in ort_cols)
        print(f"| {n} | {v:.2f} | {best_fp32 / v:.2f}x |{cols}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

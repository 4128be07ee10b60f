"""Per-dispatch profile of a model build: where the time goes, dispatch by dispatch.

Builds the model (FP32, or all-INT8 from a calibration folder, or a saved plan) for the host with
the target's flags, has IREE dump one benchmark module per dispatch, times each one alone
(iree-benchmark-module, local-sync: one thread) and multiplies by how often the model invokes it
(counted in the flow-level IR). Prints the top dispatches with their kind and shape (from the
dispatch name), share of the total and the count of vector multiply-accumulate instructions.

Usage: python tools/profile_dispatches.py MODEL.onnx [--calib DIR | --plan PLAN.json]
           [--preset speed|iree] [--preprocess imagenet|tf] [--top 12] [--reps 3]
Without --calib/--plan the FP32 build is profiled. Times are for one thread; shares are what
matter. Dispatches that cannot be benchmarked alone are listed as untimed.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import statistics
import subprocess
import sys
import tempfile

from quantune_iree.algo.planning import build_plan
from quantune_iree.backend.compile import _compile_tool
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.runtime import runtime_tool
from quantune_iree.backend.targets import get_target
from quantune_iree.io.dataset import PRESETS, iter_samples
from quantune_iree.ir.importer import import_onnx
from quantune_iree.model.plan import QuantConfig, check_plan_matches, plan_from_json
from quantune_iree.stages.fp32_pass import run_fp32_pass

MAC = re.compile(r"\b(vpdpbusd|vpdpwssd|vpmaddwd|vpmaddubsw|vfmadd\w*|vpmulld|smlal2?|fmla|sdot)\b")


def _counts(bytecode_path: str, flags: list[str], tmp: str) -> collections.Counter:
    flow = os.path.join(tmp, "flow.mlir")
    subprocess.run(
        [
            _compile_tool(),
            "--compile-from=input",
            *flags,
            bytecode_path,
            "--compile-to=flow",
            "-o",
            flow,
        ],
        check=True,
    )
    text = open(flow).read()
    return collections.Counter(re.findall(r"flow\.dispatch @[\w$]+::@([\w$]+)", text))


def _asm(folder: str) -> dict[str, collections.Counter]:
    out: dict[str, collections.Counter] = {}
    for path in glob.glob(os.path.join(folder, "*.s")):
        name = None
        for line in open(path):
            m = re.match(r"^(\w+_dispatch_\d+\w*):", line)
            if m:
                name = m.group(1)
                out.setdefault(name, collections.Counter())
            elif name:
                out[name].update(MAC.findall(line))
    return out


def _time(bench: str, flags: list[str], reps: int) -> dict[str, float]:
    vmfb = bench[: -len(".mlir")] + ".vmfb"
    text = (
        open(bench)
        .read()
        .replace("max_stack_allocation_size = 262144", "max_stack_allocation_size = 8388608")
    )
    open(bench, "w").write(text)
    proc = subprocess.run(
        [
            _compile_tool(),
            bench,
            *[
                f
                for f in flags
                if "target-device" in f or "target-cpu" in f or "backends" in f or "triple" in f
            ],
            "--iree-llvmcpu-fail-on-large-vector=false",
            "-o",
            vmfb,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode:
        return {}
    times: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(reps):
        out = subprocess.run(
            [
                runtime_tool("iree-benchmark-module"),
                f"--module={vmfb}",
                "--device=local-sync",
                "--benchmark_min_time=0.05s",
                "--task_worker_stack_size=1048576",
            ],
            capture_output=True,
            text=True,
        ).stdout
        for m in re.finditer(r"BM_(\S+)/process_time/real_time\s+([\d.]+) (us|ms)", out):
            times[m.group(1).split("_x86_64_", 1)[-1]].append(
                float(m.group(2)) * (1000 if m.group(3) == "ms" else 1)
            )
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--calib")
    ap.add_argument("--plan")
    ap.add_argument("--preset", default="speed")
    ap.add_argument("--preprocess", default="imagenet", choices=sorted(PRESETS))
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    model = import_onnx(args.model)
    engine = Engine(model, get_target("host", preset=args.preset))
    plan = None
    if args.plan:
        plan = plan_from_json(open(args.plan).read(), args.plan)
        check_plan_matches(plan, engine.layers, model.sha256, args.plan)
    elif args.calib:
        samples = iter_samples(args.calib, model.inputs, PRESETS[args.preprocess], 16)
        stats = run_fp32_pass(model, samples, layers=engine.layers, reference_elements=None)
        plan = build_plan(model.sha256, engine.layers, stats, QuantConfig())
    flags = list(engine.target.flags)
    with tempfile.TemporaryDirectory(prefix="quantune-profile-") as tmp:
        src = os.path.join(tmp, "model.mlirbc")
        open(src, "wb").write(engine.lower(plan).bytecode)
        bench, dump = os.path.join(tmp, "bench"), os.path.join(tmp, "dump")
        subprocess.run(
            [
                _compile_tool(),
                "--compile-from=input",
                *flags,
                src,
                "-o",
                os.path.join(tmp, "m.vmfb"),
                f"--iree-hal-dump-executable-benchmarks-to={bench}",
                f"--iree-hal-dump-executable-intermediates-to={dump}",
            ],
            check=True,
        )
        counts = _counts(src, flags, tmp)
        asm = _asm(dump)
        times: dict[str, float] = {}
        for path in sorted(glob.glob(os.path.join(bench, "*.mlir"))):
            times.update(_time(path, flags, args.reps))
    rows = []
    for name, n in counts.items():
        t = times.get(name)
        rows.append((t * n if t is not None else float("nan"), t, n, name))
    total = sum(r[0] for r in rows if r[0] == r[0])
    rows.sort(key=lambda r: -r[0] if r[0] == r[0] else 1.0)
    what = "FP32" if plan is None else f"{len(plan.int8_layers)} INT8 layers"
    print(
        f"{os.path.basename(args.model)}, {what}, preset {args.preset}: "
        f"{len(rows)} dispatch sites, {sum(counts.values())} invocations, "
        f"{total / 1000:.2f} ms summed (1 thread)"
    )
    print("| share | us | n | dispatch (kind_shape_types) | MAC instructions |")
    print("|---|---|---|---|---|")
    for tt, _t, n, name in rows[: args.top]:
        macs = ", ".join(f"{k} {v}" for k, v in asm.get(name, {}).most_common(3))
        share = f"{100 * tt / total:.1f}%" if tt == tt else "untimed"
        us = f"{tt:.0f}" if tt == tt else "-"
        print(f"| {share} | {us} | {n} | {name.split('_dispatch_', 1)[-1]} | {macs} |")
    untimed = [r[3] for r in rows if r[0] != r[0]]
    if untimed:
        print(f"untimed (no standalone benchmark): {len(untimed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-dispatch profile of a model build: where the time goes, dispatch by dispatch.

Builds the model (FP32, or all-INT8 from a calibration folder, or a saved plan) for the host
with the target's flags, runs it REPS times on one thread (`iree-benchmark-module`,
`local-sync`) with IREE's HAL profiling of host execution on, and reads the per-dispatch
statistics (`iree-profile statistics`). Prints the top dispatches with their kind and shape
(from the dispatch name), time per inference (the fastest of the runs, times its calls per
run), share of the total, and the vector multiply-accumulate instructions in its assembly.

Usage: python tools/profile_dispatches.py MODEL.onnx [--calib DIR | --plan PLAN.json]
           [--preset speed|iree] [--preprocess imagenet|tf] [--top 12] [--reps 20]
Without --calib/--plan the FP32 build is profiled. Times are for one thread; shares are what
matter.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from quantune_iree.algo.planning import build_plan
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.runtime import runtime_tool
from quantune_iree.backend.targets import get_target
from quantune_iree.io.dataset import PRESETS, iter_samples
from quantune_iree.ir.importer import import_onnx
from quantune_iree.model.plan import QuantConfig, check_plan_matches, plan_from_json
from quantune_iree.stages.fp32_pass import run_fp32_pass

MAC = re.compile(r"\b(vpdpbusd|vpdpwssd|vpmaddwd|vpmaddubsw|vfmadd\w*|vpmulld|smlal2?|fmla|sdot)\b")


def asm_macs(folder: str) -> dict[str, collections.Counter]:
    """Dispatch name → its multiply-accumulate instructions, from the dumped assembly."""
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


def dispatch_times(vmfb: str, function: str, inputs: list[str], flags: tuple, reps: int) -> dict:
    """Dispatch name → (µs per inference, calls per inference), from HAL host-execution
    profiling of `reps` single-threaded runs."""
    prof = vmfb + ".ireeprof"
    subprocess.run(
        [
            runtime_tool("iree-benchmark-module"),
            f"--module={vmfb}",
            f"--function={function}",
            "--device=local-sync",
            *[f"--input=@{p}" for p in inputs],
            *flags,
            f"--benchmark_min_time={reps}x",
            "--device_profiling_mode=host-execution",
            f"--device_profiling_output={prof}",
        ],
        check=True,
        capture_output=True,
    )
    stats = subprocess.run(
        [runtime_tool("iree-profile"), "statistics", "--format=jsonl", prof],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [json.loads(line) for line in stats.splitlines() if line.strip()]
    rows = [r for r in rows if r.get("row_type") == "host_execution_function"]
    runs = min(r["sample_count"] for r in rows)  # some dispatch runs once per inference
    out = {}
    for r in rows:
        calls = r["sample_count"] / runs
        out[r["function_name"]] = (r["minimum_duration_ns"] * calls / 1000, calls)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--calib")
    ap.add_argument("--plan")
    ap.add_argument("--preset", default="speed")
    ap.add_argument("--preprocess", default="imagenet", choices=sorted(PRESETS))
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()

    plan = plan_from_json(open(args.plan).read(), args.plan) if args.plan else None
    model = import_onnx(args.model, equalization=plan.equalization if plan else ())
    engine = Engine(model, get_target("host", preset=args.preset))
    if plan is not None:
        check_plan_matches(plan, engine.layers, model.sha256, args.plan)
    elif args.calib:
        samples = iter_samples(args.calib, model.inputs, PRESETS[args.preprocess], 16)
        stats = run_fp32_pass(model, samples, layers=engine.layers, reference_elements=None)
        plan = build_plan(model.sha256, engine.layers, stats, QuantConfig())
    with tempfile.TemporaryDirectory(prefix="quantune-profile-") as tmp:
        dump = os.path.join(tmp, "dump")
        flags = (*engine.target.flags, f"--iree-hal-dump-executable-intermediates-to={dump}")
        target = dataclasses.replace(engine.target, flags=flags)
        vmfb = os.path.join(tmp, "m.vmfb")
        with open(vmfb, "wb") as f:
            f.write(Engine(model, target).build(plan))
        inputs = []
        for i, spec in enumerate(model.inputs):
            path = os.path.join(tmp, f"in{i}.npy")
            np.save(path, np.random.default_rng(i).random(spec.shape).astype(spec.dtype))
            inputs.append(path)
        times = dispatch_times(vmfb, model.function, inputs, target.runtime_flags, args.reps)
        macs = asm_macs(dump)
    total = sum(t for t, _ in times.values())
    what = "FP32" if plan is None else f"{len(plan.int8_layers)} INT8 layers"
    print(
        f"{os.path.basename(args.model)}, {what}, preset {args.preset}: {len(times)} dispatches, "
        f"{total / 1000:.2f} ms per inference on one thread (fastest of {args.reps} runs each)"
    )
    print("| share | us | calls | dispatch (kind_shape_types) | MAC instructions |")
    print("|---|---|---|---|---|")
    for name, (us, calls) in sorted(times.items(), key=lambda kv: -kv[1][0])[: args.top]:
        mac = ", ".join(f"{k} {v}" for k, v in macs.get(name, {}).most_common(3))
        short = name.split("_dispatch_", 1)[-1]
        print(f"| {100 * us / total:.1f}% | {us:.0f} | {calls:g} | {short} | {mac} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Accuracy ablation of the quantization techniques on the real models: each configuration's
full-INT8 build, then mixed plans of the default configuration, on the dev images against FP32.

Per model: one FP32 pass over the calibration images (with the statistics every technique
needs), one more per equalized variant (equalization changes the graph the passes run); an INT8
pass only where a configuration needs one (empirical bias correction, the ranking of the mixed
plans). Reports output SQNR, top-1 agreement with FP32 on all dev images and on the confident
subset (FP32's top-1 probability >= --confident), and labelled top-1.

Configurations: CALIBRATION[@PERCENTILE][:ROUNDING][:BIAS][:EQUALIZATION][:SMOOTHING], e.g.
`minmax`, `percentile:gptq:analytic`, `percentile:gptq:analytic:activations:auto`.

Usage: python tools/ablate.py [EVAL_DIR] [--models mobilenet_v2.onnx,...] [--configs C,...]
           [--fp32-fractions 0.05,0.1] [--out docs/results/accuracy.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
from devset import DevSet, load_devset
from quantune_iree.algo.planning import build_plan, with_empirical_corrections
from quantune_iree.algo.ranking import rank_layers
from quantune_iree.algo.selection import fraction_k, top_k
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.targets import get_target
from quantune_iree.io.dataset import PRESETS, calibration_files, load_image
from quantune_iree.ir.equalize import weight_equalization
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.job import JobOptions, rescale_inputs
from quantune_iree.model.plan import Plan, QuantConfig, with_precisions
from quantune_iree.stages.analysis import analyze
from quantune_iree.stages.fp32_pass import run_fp32_pass
from quantune_iree.stages.int8_pass import run_int8_pass

PREPROCESS = {"mobilenet_v2.onnx": "imagenet", "efficientnet_lite0.onnx": "tf"}
DEFAULT_CONFIGS = (
    "minmax,percentile,auto,minmax:gptq,percentile:gptq,percentile:nearest:analytic,"
    "percentile:gptq:analytic,percentile:gptq:empirical,auto:gptq:analytic,"
    "minmax:nearest:none:weights,percentile:gptq:analytic:weights,"
    "minmax:nearest:none:activations,percentile:gptq:none:activations,"
    "percentile:gptq:analytic:activations,percentile:gptq:empirical:activations,"
    "percentile:gptq:analytic:activations:0.5,percentile:gptq:analytic:activations:auto"
)


def parse_config(text: str) -> QuantConfig:
    parts = text.split(":")
    method, _, pct = parts[0].partition("@")
    return QuantConfig(
        calibration=method,
        percentile=float(pct) if pct else QuantConfig().percentile,
        weight_rounding=parts[1] if len(parts) > 1 else "nearest",
        bias_correction=parts[2] if len(parts) > 2 else "none",
        equalization=parts[3] if len(parts) > 3 else "none",
        smoothing=parts[4] if len(parts) > 4 else "none",
    )


@dataclass
class Row:
    label: str
    sqnr: float
    agree: float
    agree_confident: float
    top1: float
    passes: int


def score(
    dev: DevSet, mask: np.ndarray, engine: Engine, plan: Plan, label: str, passes: int
) -> Row:
    got = dev.run(engine.load(plan))
    agree, top1, sqnr, _ = dev.score(got)
    conf = float(np.mean(got[mask].argmax(-1) == dev.ref[mask].argmax(-1)))
    row = Row(label, sqnr, agree, conf, top1, passes)
    print(
        f"  {label}: {sqnr:.2f} dB, {100 * agree:.1f}% all, {100 * conf:.1f}% confident",
        file=sys.stderr,
        flush=True,
    )
    return row


def ablate_model(args: argparse.Namespace, name: str) -> tuple[list[Row], int, int]:
    path = os.path.join(args.eval_dir, "models", name)
    preset = PRESETS[PREPROCESS[name]]
    calib_dir = os.path.join(args.eval_dir, "images", "calib")
    calib = calibration_files(calib_dir)

    def samples():  # noqa: ANN202
        return ([load_image(p, preset)] for p in calib)

    plain = import_onnx(path)
    dev = load_devset(args.eval_dir, plain, preset)
    mask = dev.confident(args.confident)
    rows: list[Row] = []
    prepared: dict[tuple[str, str], tuple] = {}
    for text in args.configs.split(","):
        config = parse_config(text)
        key = (config.equalization, config.smoothing)
        if key not in prepared:
            model = plain
            if config.equalization == "weights":
                model = import_onnx(path, equalization=weight_equalization)
            if config.equalization == "activations" or config.smoothing != "none":
                opts = JobOptions(path, "", calib=calib_dir, preprocess=preset, config=config)
                model, _ = rescale_inputs(opts, model, layer_table(model))
            layers = layer_table(model)
            fp32 = run_fp32_pass(model, samples(), layers=layers, second_moments=True)
            prepared[key] = (model, layers, fp32, Engine(model, get_target("host")))
        model, layers, fp32, engine = prepared[key]
        plan = build_plan(model.sha256, layers, fp32, config)
        passes = 1
        if config.bias_correction == "empirical":
            int8 = run_int8_pass(model, plan, fp32, samples(), layers=layers)
            plan = with_empirical_corrections(plan, fp32, int8, layers)
            passes = 2
        rows.append(score(dev, mask, engine, plan, f"full INT8, {text}", passes))
    # Mixed plans: the default configuration's analysis (the product's two passes), ranked.
    default = QuantConfig()
    model, layers = prepared.get((default.equalization, default.smoothing), (None, None))[:2]
    if model is None:
        opts = JobOptions(path, "", calib=calib_dir, preprocess=preset, config=default)
        model, _ = rescale_inputs(opts, plain, layer_table(plain))
        layers = layer_table(model)
    analysis = analyze(model, layers, samples, default)
    ranking = rank_layers(analysis.layers, "combined")
    engine = Engine(model, get_target("host"))
    for fraction in (float(f) for f in args.fp32_fractions.split(",")):
        k = fraction_k(len(ranking), fraction)
        plan = with_precisions(analysis.int8_plan, top_k(ranking, k))
        label = f"default, {k} FP32 ({100 * fraction:.0f}%)"
        rows.append(score(dev, mask, engine, plan, label, analysis.inference_passes))
    return rows, len(dev.inputs), int(mask.sum())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_dir", nargs="?", default="../shared/eval")
    ap.add_argument("--models", default="mobilenet_v2.onnx,efficientnet_lite0.onnx")
    ap.add_argument("--configs", default=DEFAULT_CONFIGS)
    ap.add_argument("--fp32-fractions", default="0.05,0.1")
    ap.add_argument("--confident", type=float, default=0.5)
    ap.add_argument("--out", default=None, help="write the markdown table here too")
    args = ap.parse_args()
    t0 = time.perf_counter()
    lines = [
        f"Default configuration: {QuantConfig()}.",
        "",
        "| model | build | output SQNR dB | agreement, all | agreement, confident | "
        "labelled top-1 | passes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.models.split(","):
        print(name, file=sys.stderr, flush=True)
        rows, n, n_conf = ablate_model(args, name)
        lines[0] += f" {name}: {n} dev images, {n_conf} confident."
        for r in rows:
            lines.append(
                f"| {name} | {r.label} | {r.sqnr:.2f} | {100 * r.agree:.1f}% | "
                f"{100 * r.agree_confident:.1f}% | {100 * r.top1:.1f}% | {r.passes} |"
            )
    lines.append("")
    lines.append(f"({time.perf_counter() - t0:.0f} s)")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

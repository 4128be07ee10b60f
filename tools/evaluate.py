"""Evaluates mixed-precision plans on real images: agreement with FP32 vs number of FP32 layers,
per ranker. One analysis (two inference passes over the calibration images) per model, then for
each ranker and K a mixed build run over the dev images next to the FP32 build.

Usage: python tools/evaluate.py [EVAL_DIR] [--models mobilenet_v2.onnx,...] [--ks 0,1,2,4,8]
                                [--rankers combined,random] [--seeds 5] [--out docs/results]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time

import numpy as np
from devset import load_devset, ort_quantize_static
from quantune_iree.analysis import analyze
from quantune_iree.compile import compile_vmfb
from quantune_iree.dataset import PRESETS, iter_samples
from quantune_iree.importer import import_onnx
from quantune_iree.layers import layer_table
from quantune_iree.plan import QuantConfig, with_precisions
from quantune_iree.quantize import quantize_model
from quantune_iree.ranking import rank_layers
from quantune_iree.runtime import Runner
from quantune_iree.selection import top_k
from quantune_iree.targets import get_target

PREPROCESS = {"mobilenet_v2.onnx": "imagenet", "efficientnet_lite0.onnx": "tf"}


def evaluate_model(name: str, args: argparse.Namespace) -> None:
    host = get_target("host")
    ks = [int(k) for k in args.ks.split(",")]
    preset = PRESETS[PREPROCESS[name]]
    model = import_onnx(os.path.join(args.eval_dir, "models", name))
    layers = layer_table(model)
    calib_dir = os.path.join(args.eval_dir, "images", "calib")
    config = QuantConfig(calibration=args.calibration)
    analysis = analyze(model, layers, lambda: iter_samples(calib_dir, model.inputs, preset), config)
    dev = load_devset(args.eval_dir, model, preset, args.limit)
    cache: dict[tuple[int, ...], tuple[float, float, float]] = {}

    def evaluate(fp32_ids: tuple[int, ...]) -> tuple[float, float, float]:
        key = tuple(sorted(fp32_ids))
        if key not in cache:
            plan = with_precisions(analysis.int8_plan, key)
            run = Runner(compile_vmfb(quantize_model(model, plan), host), model.function)
            cache[key] = dev.score(dev.run(run))
        return cache[key]

    rows = []
    for ranker in args.rankers.split(","):
        seeds = range(args.seeds) if ranker == "random" else [0]
        for k in ks:
            vals = np.array(
                [evaluate(top_k(rank_layers(analysis.layers, ranker, seed=s), k)) for s in seeds]
            )
            agree, labelled, sqnr = vals.mean(axis=0)
            rows.append(
                {
                    "model": name,
                    "ranker": ranker + (f" (mean of {len(seeds)})" if ranker == "random" else ""),
                    "fp32_layers": k,
                    "agreement_pct": round(100 * agree, 1),
                    "labelled_top1_pct": round(100 * labelled, 1),
                    "output_sqnr_db": round(float(sqnr), 2),
                }
            )
            print(rows[-1], flush=True)
    if args.ort:
        import onnxruntime as ort

        ranking = rank_layers(analysis.layers)
        in_name = model.inputs[0].name
        for k in ks:
            calib = (s[0] for s in iter_samples(calib_dir, model.inputs, preset))
            qdq = ort_quantize_static(model.path, in_name, calib, [r.node for r in ranking[:k]])
            sess = ort.InferenceSession(qdq, providers=["CPUExecutionProvider"])
            agree, labelled, sqnr = dev.score(
                np.stack([sess.run(None, {in_name: x})[0][0] for x in dev.inputs])
            )
            rows.append(
                {
                    "model": name,
                    "ranker": "onnxruntime quantize_static QDQ (excludes the combined top K)",
                    "fp32_layers": k,
                    "agreement_pct": round(100 * agree, 1),
                    "labelled_top1_pct": round(100 * labelled, 1),
                    "output_sqnr_db": round(sqnr, 2),
                }
            )
            print(rows[-1], flush=True)
    fp32_top1 = dev.top1(dev.ref)
    head = (
        f"## {name}\n\nCalibration: {analysis.calibration.samples} images, "
        f"{args.calibration}, asymmetric activations, per-channel weights. Analysis: "
        f"{analysis.inference_passes} inference passes, {analysis.seconds:.1f} s. "
        f"Dev: {len(dev.inputs)} images ({len(dev.labelled)} labelled; FP32 labelled top-1 "
        f"{100 * fp32_top1:.1f}%).\n\n"
    )
    table = [
        "| ranker | FP32 layers | top-1 agreement | labelled top-1 | output SQNR dB |",
        "|---|---|---|---|---|",
    ]
    table += [
        f"| {r['ranker']} | {r['fp32_layers']} | {r['agreement_pct']}% | "
        f"{r['labelled_top1_pct']}% | {r['output_sqnr_db']} |"
        for r in rows
    ]
    md = head + "\n".join(table) + "\n"
    print(md)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        stem = os.path.join(args.out, name.removesuffix(".onnx"))
        with open(stem + ".md", "w") as f:
            f.write(md)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        with open(stem + ".csv", "w") as f:
            f.write(buf.getvalue())
    print(f"<!-- {name}: done at {time.strftime('%H:%M:%S')} -->", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_dir", nargs="?", default="../shared/eval")
    ap.add_argument("--models", default=",".join(PREPROCESS))
    ap.add_argument("--ks", default="0,1,2,4,8")
    ap.add_argument("--rankers", default="combined,random")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--calibration", default="minmax")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--ort", action="store_true", help="also onnxruntime quantize_static")
    ap.add_argument("--out", default=None, help="folder for <model>.md and <model>.csv")
    args = ap.parse_args()
    for name in args.models.split(","):
        evaluate_model(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

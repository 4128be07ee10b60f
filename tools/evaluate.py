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
from quantune_iree.analysis import analyze
from quantune_iree.compile import compile_vmfb
from quantune_iree.dataset import PRESETS, calibration_files, iter_samples, load_image
from quantune_iree.importer import import_onnx
from quantune_iree.layers import layer_table
from quantune_iree.metrics import ErrorAccumulator, top1_agreement
from quantune_iree.plan import QuantConfig, with_precisions
from quantune_iree.quantize import quantize_model
from quantune_iree.ranking import rank_layers
from quantune_iree.runtime import Runner
from quantune_iree.selection import top_k
from quantune_iree.targets import get_target

PREPROCESS = {"mobilenet_v2.onnx": "imagenet", "efficientnet_lite0.onnx": "tf"}


def _labels(eval_dir: str) -> dict[str, int]:
    with open(os.path.join(eval_dir, "dev.csv")) as f:
        return {
            r["file"]: int(r["imagenet_label"])
            for r in csv.DictReader(f)
            if r.get("imagenet_label")
        }


def _ort_int8(path: str, input_name: str, calib_dir: str, preset, inputs, exclude):  # noqa: ANN001, ANN202
    """ORT static INT8 (QDQ, per-channel, same calibration images), run over `inputs`."""
    import tempfile

    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration_files(calib_dir))

        def get_next(self):  # noqa: ANN202
            p = next(self.it, None)
            return None if p is None else {input_name: load_image(p, preset)}

    out = tempfile.NamedTemporaryFile(suffix=".onnx", delete=False).name
    quantize_static(
        path,
        out,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        nodes_to_exclude=list(exclude),
    )
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    return np.stack([sess.run(None, {input_name: x})[0][0] for x in inputs])


def evaluate_model(name: str, args: argparse.Namespace, labels: dict[str, int]) -> None:
    host = get_target("host")
    ks = [int(k) for k in args.ks.split(",")]
    preset = PRESETS[PREPROCESS[name]]
    model = import_onnx(os.path.join(args.eval_dir, "models", name))
    layers = layer_table(model)
    calib_dir = os.path.join(args.eval_dir, "images", "calib")
    config = QuantConfig(calibration=args.calibration)
    analysis = analyze(model, layers, lambda: iter_samples(calib_dir, model.inputs, preset), config)
    dev = calibration_files(os.path.join(args.eval_dir, "images", "dev"))[: args.limit]
    inputs = [load_image(p, preset) for p in dev]
    fp32 = Runner(compile_vmfb(model.bytecode, host), model.function)
    ref = np.stack([fp32([x])[0][0] for x in inputs])
    lab = [i for i, p in enumerate(dev) if os.path.basename(p) in labels]
    truth = np.array([labels[os.path.basename(dev[i])] for i in lab])
    cache: dict[tuple[int, ...], tuple[float, float, float]] = {}

    def evaluate(fp32_ids: tuple[int, ...]) -> tuple[float, float, float]:
        key = tuple(sorted(fp32_ids))
        if key not in cache:
            plan = with_precisions(analysis.int8_plan, key)
            run = Runner(compile_vmfb(quantize_model(model, plan), host), model.function)
            got = np.stack([run([x])[0][0] for x in inputs])
            acc = ErrorAccumulator()
            acc.add(ref, got)
            labelled = float(np.mean(got[lab].argmax(-1) == truth)) if lab else float("nan")
            cache[key] = (top1_agreement(ref, got), labelled, acc.sqnr_db)
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
        ranking = rank_layers(analysis.layers)
        for k in ks:
            got = _ort_int8(
                model.path,
                model.inputs[0].name,
                calib_dir,
                preset,
                inputs,
                [r.node for r in ranking[:k]],
            )
            acc = ErrorAccumulator()
            acc.add(ref, got)
            rows.append(
                {
                    "model": name,
                    "ranker": "onnxruntime quantize_static QDQ (excludes the combined top K)",
                    "fp32_layers": k,
                    "agreement_pct": round(100 * top1_agreement(ref, got), 1),
                    "labelled_top1_pct": round(
                        100 * float(np.mean(got[lab].argmax(-1) == truth)), 1
                    ),
                    "output_sqnr_db": round(acc.sqnr_db, 2),
                }
            )
            print(rows[-1], flush=True)
    fp32_top1 = float(np.mean(ref[lab].argmax(-1) == truth)) if lab else float("nan")
    head = (
        f"## {name}\n\nCalibration: {analysis.calibration.samples} images, "
        f"{args.calibration}, asymmetric activations, per-channel weights. Analysis: "
        f"{analysis.inference_passes} inference passes, {analysis.seconds:.1f} s. "
        f"Dev: {len(inputs)} images ({len(lab)} labelled; FP32 labelled top-1 "
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
    labels = _labels(args.eval_dir)
    for name in args.models.split(","):
        evaluate_model(name, args, labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())

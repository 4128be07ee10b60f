"""Full-INT8 accuracy of the real models per calibration method, measured against FP32.

For each model: one FP32 pass over the calibration images, then for each calibration method
(and symmetric/asymmetric activations) a fully INT8 build (per-channel weights), run over the
dev images next to the FP32 build. Prints end-to-end output SQNR, top-1 agreement with FP32,
and labelled top-1 where dev.csv has ImageNet labels, as a markdown table.

Usage: python tools/int8_accuracy.py [EVAL_DIR] [--limit N]   (EVAL_DIR default ../shared/eval)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from devset import load_devset
from quantune_iree.algo.planning import build_plan
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.targets import get_target
from quantune_iree.io.dataset import PRESETS, calibration_files, load_image
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.model.plan import CALIBRATION_METHODS, QuantConfig
from quantune_iree.stages.fp32_pass import run_fp32_pass

MODELS = {"mobilenet_v2.onnx": "imagenet", "efficientnet_lite0.onnx": "tf"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_dir", nargs="?", default="../shared/eval")
    ap.add_argument("--limit", type=int, default=None, help="dev images to use")
    args = ap.parse_args()
    print(
        "| model | activations | calibration | output SQNR dB | top-1 agreement | "
        "labelled top-1 (FP32) | images |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, preset_name in MODELS.items():
        preset = PRESETS[preset_name]
        model = import_onnx(os.path.join(args.eval_dir, "models", name))
        layers = layer_table(model)
        engine = Engine(model, get_target("host"))
        calib = calibration_files(os.path.join(args.eval_dir, "images", "calib"))
        t0 = time.perf_counter()
        stats = run_fp32_pass(
            model, ([load_image(p, preset)] for p in calib), layers=layers, reference_elements=None
        )
        print(f"<!-- {name}: FP32 pass {time.perf_counter() - t0:.1f} s -->", file=sys.stderr)
        dev = load_devset(args.eval_dir, model, preset, args.limit)
        fp32_top1 = dev.top1(dev.ref)
        for symmetric in (False, True):
            for method in CALIBRATION_METHODS:
                plan = build_plan(
                    model.sha256,
                    layers,
                    stats,
                    QuantConfig(calibration=method, symmetric=symmetric),
                )
                int8 = engine.load(plan)
                agree, top1, sqnr, _ = dev.score(dev.run(int8))
                print(
                    f"| {name} | {'symmetric' if symmetric else 'asymmetric'} | {method} | "
                    f"{sqnr:.2f} | {100 * agree:.1f}% | "
                    f"{100 * top1:.1f}% ({100 * fp32_top1:.1f}%) | {len(dev.inputs)} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())

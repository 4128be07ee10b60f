"""Measures the FP32 pass on the real models: taps, compile and run time, peak memory.

Each model runs in its own process so peak RSS is that model's alone.
Usage: python tools/fp32_pass_report.py [EVAL_DIR]   (default ../shared/eval)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MODELS = {"mobilenet_v2.onnx": "imagenet", "efficientnet_lite0.onnx": "tf"}

CHILD = """
import json, sys, numpy as np
from quantune_iree.stages.fp32_pass import run_fp32_pass
from quantune_iree.io.dataset import PRESETS, iter_samples
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
model = import_onnx(sys.argv[1])
layers = layer_table(model)
r = run_fp32_pass(model, iter_samples(sys.argv[2], model.inputs, PRESETS[sys.argv[3]]),
                  layers=layers)
print(json.dumps({"layers": len(layers), "taps": r.num_taps, "samples": r.samples,
                  "compile_s": r.compile_seconds, "run_s": r.run_seconds,
                  "peak_rss_mb": r.peak_rss_mb}))
"""


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/eval")
    print("| model | layers | taps | samples | compile s | run s | ms/sample | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, preset in MODELS.items():
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(root / "models" / name),
                str(root / "images/calib"),
                preset,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"| {name} | {r['layers']} | {r['taps']} | {r['samples']} | {r['compile_s']:.1f} | "
            f"{r['run_s']:.1f} | {1000 * r['run_s'] / r['samples']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Accuracy and speed of a shipped host build against the model's FP32 build on this machine.

Builds the ONNX model's FP32 vmfb with the shipped build's own compiler flags (its sidecar),
runs both over the images of a folder (preprocessed as the build's sidecar says), and prints
top-1 agreement with FP32, output SQNR, and both builds' median latency measured interleaved.

Usage: python tools/check_build.py MODEL.onnx BUILD.vmfb IMAGES_DIR [--reps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from devset import load_imageset
from quantune_iree.algo.metrics import ratio_spread
from quantune_iree.backend.engine import Engine
from quantune_iree.io.dataset import Preprocess
from quantune_iree.ir.importer import import_onnx
from quantune_iree.model.target import Target
from quantune_iree.stages.speed_probe import interleaved_times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("vmfb")
    ap.add_argument("images")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()

    with open(args.vmfb + ".json") as f:
        side = json.load(f)
    pre = side["preprocessing"]
    preset = Preprocess(**{k: tuple(v) if isinstance(v, list) else v for k, v in pre.items()})
    model = import_onnx(args.model)
    images = load_imageset(args.images, model, preset)
    t = side["target"]
    # The FP32 build is made the way the shipped one was: its flags, runtime flags and
    # channels-last FP32 convs (sidecars before that key: the flags alone).
    target = Target(
        t["name"],
        t["driver"],
        tuple(t["flags"]),
        tuple(t["runtime_flags"]),
        t.get("preset", "iree"),
        t.get("isa", "generic"),
        t.get("channels_last", False),
    )
    engine = Engine(model, target)
    with open(args.vmfb, "rb") as f:
        shipped = engine.run_vmfb(f.read(), side["function"])
    agree, _, sqnr, conf = images.score(images.run(shipped))
    print(
        f"accuracy: top-1 agreement with FP32 on {len(images.inputs)} photos {100 * agree:.1f}% "
        f"({100 * conf:.1f}% on the {int(images.confident().sum())} where FP32 is confident), "
        f"output SQNR {sqnr:.1f} dB"
    )
    fp32 = engine.load(None)
    x = [images.inputs[0]]
    times = interleaved_times({"fp32": lambda: fp32(x), "shipped": lambda: shipped(x)}, args.reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = ratio_spread(times["fp32"], times["shipped"])
    print(
        f"speed on this host ({args.reps} interleaved runs, median; FP32 built the same way, "
        f"preset {t.get('preset', 'default')}): FP32 {med['fp32']:.1f} ms, "
        f"this build {med['shipped']:.1f} ms: {spread.describe()} FP32's speed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

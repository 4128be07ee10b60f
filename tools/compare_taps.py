"""Where a Vulkan build departs from the host build of the same plan: layer by layer, with taps.

Builds MODEL with the plan's layers tapped (their inputs and outputs as extra results) for
`--vulkan-target` and for the host (iree preset), runs both on one image (the Vulkan build with
iree-run-module on the first Vulkan device, e.g. Mesa's lavapipe for `llvmpipe`) and prints each
tapped layer's input and output SQNR of the Vulkan values against the host's, then the logits'.
A layer whose output SQNR falls far below its input's is where the difference starts.

Usage: python tools/compare_taps.py MODEL.onnx --plan PLAN.json --image PHOTO.jpg
           [--vulkan-target llvmpipe] [--layers N] [--preprocess imagenet]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from quantune_iree.algo.metrics import sqnr
from quantune_iree.backend.compile import compile_vmfb
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.runtime import run_module_cli
from quantune_iree.backend.targets import get_target
from quantune_iree.io.dataset import PRESETS, load_image
from quantune_iree.ir.importer import import_onnx
from quantune_iree.model.plan import check_plan_matches, plan_from_json


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--plan", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--vulkan-target", default="llvmpipe")
    ap.add_argument("--layers", type=int, help="tap only the first N layers (default: all)")
    ap.add_argument("--preprocess", default="imagenet", choices=sorted(PRESETS))
    args = ap.parse_args()

    model = import_onnx(args.model)
    vulkan = Engine(model, get_target("vulkan", vulkan_target=args.vulkan_target))
    plan = plan_from_json(open(args.plan).read(), args.plan)
    check_plan_matches(plan, vulkan.layers, model.sha256, args.plan)
    ids = [layer.id for layer in vulkan.layers][: args.layers]
    x = load_image(args.image, PRESETS[args.preprocess])
    lowered = vulkan.lower(plan, taps=ids)
    assert lowered.taps is not None
    n = lowered.taps.num_original_results + lowered.taps.num_taps
    with tempfile.TemporaryDirectory(prefix="quantune-taps-") as tmp:
        path = os.path.join(tmp, "vulkan.vmfb")
        with open(path, "wb") as f:
            f.write(compile_vmfb(lowered.bytecode, vulkan.target))
        got = run_module_cli(path, lowered.function, [x], n, driver="vulkan")
    want = Engine(model, get_target("host", preset="iree")).load(plan, taps=ids)([x])
    by_id = {lp.layer_id: lp for lp in plan.layers}
    print(f"{args.vulkan_target} vs host, SQNR dB (inf: identical)")
    print("| layer | node | precision | input | output |")
    print("|---|---|---|---|---|")
    for lid in ids:
        i, o = lowered.taps.input_result[lid], lowered.taps.output_result[lid]
        lp = by_id[lid]
        print(
            f"| {lid} | {lp.node} | {lp.precision} | {sqnr(want[i], got[i]):.1f} | "
            f"{sqnr(want[o], got[o]):.1f} |"
        )
    same = got[0].argmax() == want[0].argmax()
    print(f"logits: {sqnr(want[0], got[0]):.1f} dB, top-1 {'same' if same else 'different'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

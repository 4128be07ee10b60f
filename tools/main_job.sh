#!/usr/bin/env bash
# The main job on a real pretrained model with real photos: installs quantune-iree into .venv,
# lists MobileNetV2's quantizable layers and runs the FP32 calibration pass over the photos.
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
mkdir -p out
.venv/bin/quantune-iree layers "$EVAL/models/mobilenet_v2.onnx"
.venv/bin/quantune-iree calibrate "$EVAL/models/mobilenet_v2.onnx" \
  --calib "$EVAL/images/calib" --preprocess imagenet -o out/mobilenet_v2.calib.json
echo "wrote out/mobilenet_v2.calib.json"

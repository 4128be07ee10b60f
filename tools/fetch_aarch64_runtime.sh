#!/usr/bin/env bash
# Fetches the aarch64 build of iree-base-runtime (its iree-run-module runs cortex-a53 vmfbs
# under qemu-aarch64) into build/aarch64-runtime. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=build/aarch64-runtime
tool=$dest/iree/_runtime_libs/iree-run-module
if [ -x "$tool" ]; then exit 0; fi
version=$(python -c "import importlib.metadata as m; print(m.version('iree-base-runtime'))")
tmp=$(mktemp -d)
python -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_aarch64 \
  "iree-base-runtime==$version" -d "$tmp"
mkdir -p "$dest"
python -m zipfile -e "$tmp"/iree_base_runtime-*.whl "$dest"
chmod +x "$dest"/iree/_runtime_libs/iree-*  # unzipping drops the exec bit
rm -rf "$tmp"
echo "aarch64 iree-run-module at $tool"

"""The gate in front of i8 storage on Vulkan (`--vulkan-storage i8`).

IREE 3.13's SPIR-V lowering takes i8 values loaded 4 to a 32-bit word out with a mask and a
logical shift and never sign-extends them (llvm/llvm-project#199243), so Vulkan builds store
int8 layers' integers in i32. i8 storage (4x fewer bytes) is allowed only when a probe says the
compiler in use no longer does this: int8 1x1 convs of MobileNetV2's shapes (every one of them
was hit on valhall4 with IREE 3.13) written the way the quantize pass writes them, compiled for
the target, must show no lost sign extension in their SPIR-V and, when this machine has a Vulkan
device of the target's subgroup size, compute exactly what numpy computes. The day IREE ships
the fix, the flag works without a code change."""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from ..errors import QuantuneError
from ..model.target import Target
from .compile import compile_vmfb, subgroup_sizes
from .runtime import run_module_cli
from .vulkan_device import vulkan_devices

# (input channels, output channels, height = width) of int8 1x1 convs from MobileNetV2.
PROBE_SHAPES = ((32, 16, 2), (32, 16, 112), (96, 24, 56), (144, 32, 28), (384, 64, 14))


def probe_mlir(shapes: tuple[tuple[int, int, int], ...] = PROBE_SHAPES) -> str:
    """One function per shape: an NCHW i8 x i8 -> i32 1x1 conv from a zero accumulator."""
    funcs = []
    for k, (c, f, hw) in enumerate(shapes):
        x, w, y = f"1x{c}x{hw}x{hw}xi8", f"{f}x{c}x1x1xi8", f"1x{f}x{hw}x{hw}xi32"
        funcs.append(
            f"""func.func @conv{k}(%x: tensor<{x}>, %w: tensor<{w}>) -> tensor<{y}> {{
  %z = arith.constant 0 : i32
  %e = tensor.empty() : tensor<{y}>
  %a = linalg.fill ins(%z : i32) outs(%e : tensor<{y}>) -> tensor<{y}>
  %r = linalg.conv_2d_nchw_fchw {{dilations = dense<1> : vector<2xi64>,
      strides = dense<1> : vector<2xi64>}}
      ins(%x, %w : tensor<{x}>, tensor<{w}>) outs(%a : tensor<{y}>) -> tensor<{y}>
  return %r : tensor<{y}>
}}"""
        )
    return "\n".join(funcs) + "\n"


def _probe_inputs(c: int, f: int, hw: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(c * 1000 + f)
    x = rng.integers(-128, 128, (1, c, hw, hw), dtype=np.int8)
    w = rng.integers(-127, 128, (f, c, 1, 1), dtype=np.int8)
    want = np.einsum("nchw,fc->nfhw", x.astype(np.int32), w[:, :, 0, 0].astype(np.int32))
    return x, w, want.astype(np.int32)


def check_i8_storage(target: Target) -> str:
    """Refuses (QuantuneError, one line) i8 storage for `target` while the probe shows the bug;
    returns how far the probe went ("scanned" or "scanned and run on DEVICE")."""
    what = f"--vulkan-storage i8 for {target.name}"
    try:
        vmfb = compile_vmfb(
            probe_mlir().encode(), target, what="the i8 storage probe", phase="start"
        )
    except QuantuneError as exc:
        hit = re.search(r"sign extension of i8 values in (\d+) dispatches", str(exc))
        why = (
            f"IREE's SPIR-V still drops the sign extension of i8 in {hit.group(1)} of the probe's "
            f"{len(PROBE_SHAPES)} int8 1x1 convs (llvm/llvm-project#199243)"
            if hit
            else f"the probe's int8 1x1 convs do not compile ({exc})"
        )
        raise QuantuneError(f"{what} is refused: {why}; keep the default i32 storage") from None
    devices = vulkan_devices()
    if not devices or devices[0].subgroup_size not in subgroup_sizes(target):
        return "scanned"
    with tempfile.TemporaryDirectory(prefix="quantune-probe-") as tmp:
        path = os.path.join(tmp, "probe.vmfb")
        with open(path, "wb") as f:
            f.write(vmfb)
        for k, shape in enumerate(PROBE_SHAPES):
            x, w, want = _probe_inputs(*shape)
            got = run_module_cli(path, f"conv{k}", [x, w], 1, driver="vulkan")[0]
            if not np.array_equal(got, want):
                wrong = int(np.count_nonzero(got != want))
                raise QuantuneError(
                    f"{what} is refused: the probe's int8 1x1 conv {shape[0]}->{shape[1]} at "
                    f"{shape[2]}x{shape[2]} gives {wrong} of {want.size} results wrong on "
                    f"{devices[0].name}; keep the default i32 storage"
                )
    return f"scanned and run on {devices[0].name}"

"""Compilation targets: a table from target name to IREE compiler flags, runtime driver and the
integer form each kind of layer is written in there. Every choice below was measured
(docs/results/speed.md): the fastest correct one is the `speed` preset, the default on CPUs;
`iree` keeps IREE's own flags and the plain integer form, for comparison or as a fallback."""

from __future__ import annotations

import platform
import re
from collections.abc import Sequence
from dataclasses import replace

from ..errors import QuantuneError
from ..model.layer import Layer
from ..model.target import IntegerForm, Target

_LLVM_CPU = (
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
)

# Vulkan: a target with Int8 and 8-bit storage. The default (Mali Valhall, common on embedded
# boards and phones) can be overridden; `llvmpipe` is Mesa's CPU driver (lavapipe), for tests.
DEFAULT_VULKAN_TARGET = "valhall4"
# How Vulkan builds store int8 layers' integers: i32 by default, i8 only behind a probe
# (backend/storage_probe.py) while IREE's SPIR-V loses the sign extension of packed i8.
VULKAN_STORAGES = ("i32", "i8")
VULKAN_TARGETS = ("valhall4", "valhall", "mali-g57", "mali-g78", "ampere", "rdna3", "llvmpipe")

# CPU names we map to an aarch64 triple; anything else is taken as an x86-64 CPU.
_AARCH64_PREFIXES = ("cortex-", "neoverse-", "apple-", "exynos-", "kryo", "carmel", "generic-arm")

TARGETS = ("host", "vulkan", "llvm-cpu")
# What a user picks by name; llvm-cpu is picked by naming a CPU.
NAMED_TARGETS = ("host", "vulkan")

PRESETS = ("speed", "iree")
CHANNELS_LAST_FLAG = (
    "--iree-preprocessing-pass-pipeline=builtin.module(util.func("
    "iree-preprocessing-convert-conv-to-channels-last))"
)
# Some int8 dispatches (data-tiled unpack+transpose of small-channel 1x1 convs) need more than
# IREE's 32 KB stack and "large vector" limits; they compile and run correctly with both raised,
# but then need worker threads with more than IREE's default 128 KB of stack (runtime flag).
_STACK = (
    "--iree-llvmcpu-stack-allocation-limit=262144",
    "--iree-llvmcpu-fail-on-large-vector=false",
)
# Flags of the speed preset per instruction-set family (docs/results/speed.md):
# - x86_64 with VNNI: data tiling set before fusion (global-opt: the per-dispatch variant cannot
#   compile a u8 contraction with its fused dequantize), IREE's inner-tiled VNNI kernels for u8 x
#   s8 (vpdpbusd), its microkernels for the rest and for the packs into the kernel's tiles
#   (bit for bit the same; ResNet18 INT8 one thread 13.7 -> 13.2 ms, within noise with two).
# - x86_64 without VNNI: data-tiled mmt4d microkernels, channels-last and im2col for the kxk convs.
# - aarch64 without dot products (Cortex-A53): no data tiling (IREE 3.13 has no int8 tile for
#   baseline NEON; it only adds byte-copy dispatches), im2col for float kxk convs.
_SPEED_FLAGS = {
    "x86_64_vnni": (
        "--iree-global-opt-data-tiling",
        "--iree-llvmcpu-enable-inner-tiled",
        "--iree-llvmcpu-enable-ukernels=all",
        *_STACK,
    ),
    "x86_64": (
        CHANNELS_LAST_FLAG,
        "--iree-opt-data-tiling",
        "--iree-llvmcpu-enable-ukernels=mmt4d",
        "--iree-global-opt-use-im2col-for-convs",
        *_STACK,
    ),
    "aarch64": ("--iree-global-opt-use-im2col-for-convs", *_STACK),
}
# x86 CPUs (LLVM names) with AVX-512 VNNI or AVX-VNNI.
_VNNI_CPUS = (
    "cascadelake", "cooperlake", "icelake-client", "icelake-server", "tigerlake", "rocketlake",
    "alderlake", "raptorlake", "meteorlake", "arrowlake", "lunarlake", "sapphirerapids",
    "emeraldrapids", "graniterapids", "sierraforest", "grandridge", "znver4", "znver5",
)  # fmt: skip
WORKER_STACK_FLAG = "--task_worker_stack_size=1048576"
# Process-global LLVM options an in-process compiler session refuses; a target using one is
# compiled by an iree-compile child process instead (compile.py).
GLOBAL_ONLY_FLAGS = ("--iree-llvmcpu-fail-on-large-vector",)

_NCHW_CONVS = ("linalg.conv_2d_nchw_fchw", "linalg.depthwise_conv_2d_nchw_chw")


INNER_TILED_FLAG = "--iree-llvmcpu-enable-inner-tiled"


def for_layers(target: Target, layers: Sequence[Layer]) -> Target:
    """`target`, less what cannot build these layers: IREE 3.13 fails to legalize any
    `linalg.batch_matmul` (f32 or integer; attention's Q·Kᵀ and attention·V) under data tiling
    with inner-tiled kernels, so a model with one builds without the inner-tiled kernels."""
    if INNER_TILED_FLAG in target.flags and any(lay.kind == "batch_matmul" for lay in layers):
        return replace(target, flags=tuple(f for f in target.flags if f != INNER_TILED_FLAG))
    return target


def layer_form(target: Target, layer: Layer) -> IntegerForm:
    """How `layer`'s integer compute is written for `target` (every form gives the same numbers).

    aarch64 (speed): i16 activations, so NEON multiplies i16 x i8 with `smlal` without
    re-narrowing; kxk convs through im2col (IREE's matmul tile: 1.25 cycles per `smlal` on
    the A53 model against 1.65 in the direct loops), 1x1 convs as matmuls and depthwise convs
    channels-last (direct NHWC loops vectorized over channels). x86 with VNNI (speed): u8
    activations for every conv but the depthwise ones (IREE's u8 x s8 `vpdpbusd` kernels):
    1x1 convs as matmuls over pixels, other convs through im2col; depthwise convs channels-last
    in i8. x86 without VNNI: i8; 1x1 and depthwise convs channels-last, kxk convs named (IREE's
    channels-last + im2col + microkernels). All use the reciprocal quantize. Vulkan: the named
    op on the target's storage, i32 unless asked otherwise (IREE 3.13's SPIR-V loses the sign
    extension of packed i8). Anything else (the iree preset), and the matmuls (u8 x s8
    matrix-vector products do not compile in IREE 3.13): the named op on i8, quantized by
    division under the iree preset."""
    if target.driver == "vulkan":
        return IntegerForm(target.vulkan_storage)
    if target.preset != "speed" or target.isa == "generic":
        return IntegerForm()
    nchw_conv = layer.op_name in _NCHW_CONVS
    # A 1x1 conv that keeps its spatial size has stride 1 and no padding: a matmul over pixels.
    pointwise = layer.weight_shape[2:] == (1, 1) and layer.input_shape[2:] == layer.output_shape[2:]
    if target.isa == "aarch64":
        if nchw_conv and layer.kind == "conv" and not pointwise:
            return IntegerForm("i16", "im2col", True)
        if nchw_conv:
            return IntegerForm("i16", "channels_last", True)
        if layer.kind in ("matmul", "batch_matmul"):
            return IntegerForm("i16", "named", True)
        return IntegerForm("i8", "named", True)
    if not nchw_conv:
        return IntegerForm("i8", "named", True)
    if layer.kind == "depthwise_conv":
        return IntegerForm("i8", "channels_last", True)
    if target.isa == "x86_64_vnni":
        return IntegerForm("u8", "channels_last" if pointwise else "im2col", True)
    return IntegerForm("i8", "channels_last" if pointwise else "named", True)


# Layer kinds that stay FP32 by default under the speed preset, per instruction-set family,
# because INT8 cannot win there (docs/results/speed.md). Cortex-A53 (NEON without dot
# products): `smlal` and `fmla` both do 4 multiply-accumulates per instruction, so an INT8
# depthwise conv (9 MACs per output) does the FP32 work plus its quantize and dequantize:
# MobileNetV2's 17 depthwise convs cost 5 M more estimated cycles in INT8 than in FP32.
_FP32_KINDS: dict[str, tuple[str, ...]] = {"aarch64": ("depthwise_conv",)}


def fp32_kinds(target: Target) -> tuple[str, ...]:
    """Layer kinds the default plan keeps FP32 on `target` (speed preset only)."""
    return _FP32_KINDS.get(target.isa, ()) if target.preset == "speed" else ()


def needs_subprocess(target: Target) -> bool:
    return any(f.split("=")[0] in GLOBAL_ONLY_FLAGS for f in target.flags)


def cpu_triple(cpu: str) -> str:
    return "aarch64-linux-gnu" if cpu.startswith(_AARCH64_PREFIXES) else "x86_64-linux-gnu"


def host_isa() -> str:
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "aarch64"
    try:
        with open("/proc/cpuinfo") as f:
            vnni = any(re.search(r"\b(avx512_vnni|avx_vnni)\b", line) for line in f)
    except OSError:
        vnni = False
    return "x86_64_vnni" if vnni else "x86_64"


def cpu_isa(cpu: str, triple: str) -> str:
    if triple.startswith(("aarch64", "arm64")):
        return "aarch64"
    return "x86_64_vnni" if cpu in _VNNI_CPUS else "x86_64"


def get_target(
    name: str = "host",
    extra_flags: Sequence[str] = (),
    *,
    cpu: str | None = None,
    triple: str | None = None,
    vulkan_target: str | None = None,
    preset: str | None = None,
    vulkan_storage: str | None = None,
) -> Target:
    """host: llvm-cpu for this machine. llvm-cpu: a named CPU (and triple). vulkan: SPIR-V.
    `preset` (default: speed on CPUs, iree on Vulkan) picks a measured flag set and the
    integer forms (layer_form)."""
    if preset is not None and preset not in PRESETS:
        raise QuantuneError(f"unknown preset '{preset}'; known: {', '.join(PRESETS)}")
    if name == "host" and cpu:
        name = "llvm-cpu"
    if name == "vulkan":
        if cpu:
            raise QuantuneError("a CPU name and the vulkan target conflict: choose one target")
        if preset == "speed":
            raise QuantuneError(f"preset 'speed' is for CPU targets; target {name} has none yet")
        vt = vulkan_target or DEFAULT_VULKAN_TARGET
        storage = vulkan_storage or "i32"
        if storage not in VULKAN_STORAGES:
            raise QuantuneError(
                f"unknown Vulkan storage '{storage}'; known: {', '.join(VULKAN_STORAGES)}"
            )
        flags = ("--iree-hal-target-device=vulkan", f"--iree-vulkan-target={vt}")
        return Target(
            f"vulkan-{vt}",
            "vulkan",
            flags + tuple(extra_flags),
            preset="iree",
            vulkan_storage=storage,
        )
    if vulkan_storage is not None:
        raise QuantuneError("--vulkan-storage is for Vulkan targets only")
    if name == "host":
        isa, cpu_flags = host_isa(), ("--iree-llvmcpu-target-cpu=host",)
    elif name == "llvm-cpu":
        if not cpu:
            raise QuantuneError("target llvm-cpu needs a CPU name")
        full_triple = triple or cpu_triple(cpu)
        isa = cpu_isa(cpu, full_triple)
        cpu_flags = (
            f"--iree-llvmcpu-target-triple={full_triple}",
            f"--iree-llvmcpu-target-cpu={cpu}",
        )
        name = cpu
    else:
        raise QuantuneError(f"unknown target '{name}'; known: {', '.join(TARGETS)}")
    preset = preset or "speed"
    speed = preset == "speed"
    flags = _LLVM_CPU + cpu_flags + (_SPEED_FLAGS[isa] if speed else ()) + tuple(extra_flags)
    return Target(
        name,
        "local-task",
        flags,
        (WORKER_STACK_FLAG,) if speed else (),
        preset,
        isa,
        channels_last=speed,
    )

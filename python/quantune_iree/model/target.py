"""A compilation target: what iree-compile needs to build for it and the runtime to run it, and
how its code generator wants integer layers written."""

from __future__ import annotations

from dataclasses import dataclass

STORAGES = ("i8", "u8", "i16", "i32")
CONTRACTIONS = ("named", "channels_last", "im2col")
# Instruction-set families whose integer forms differ (backend.targets.layer_form).
ISAS = ("generic", "x86_64", "x86_64_vnni", "aarch64")


@dataclass(frozen=True)
class IntegerForm:
    """How one int8 layer's integer compute is written. Every form computes the same integers,
    so the same outputs bit for bit; they differ in what IREE's code generators make of them.

    storage: the quantized activation in memory: i8; u8 (q + 128, for x86's u8 x s8 dot
    products); i16 (values in [-128, 127], so aarch64 multiplies without re-narrowing); i32
    (values in [-128, 127], weights i32 too: IREE 3.13's SPIR-V loses the sign extension of i8
    loaded several at a time, so Vulkan builds store 32-bit integers).
    contraction: `named` (the layer's own linalg op, NCHW) or `channels_last` (NHWC between
    transposes IREE cancels; convs as linalg.generic, 1x1 convs as a matmul).
    reciprocal: quantize by a corrected reciprocal and the 1.5 * 2^23 rounding addition (equal to
    x / s rounded half to even; cheaper than a division and IREE's roundeven on CPUs)."""

    storage: str = "i8"
    contraction: str = "named"
    reciprocal: bool = False


@dataclass(frozen=True)
class Target:
    name: str
    driver: str  # IREE runtime driver that runs the vmfb
    flags: tuple[str, ...]
    # Runtime flags the vmfb needs (an app loading it must pass them to IREE's runtime).
    runtime_flags: tuple[str, ...] = ()
    preset: str = "iree"
    isa: str = "generic"  # one of ISAS: picks the integer forms under the speed preset
    channels_last: bool = False  # float convs rewritten channels-last (quantune-channels-last)
    vulkan_storage: str = "i32"  # Vulkan: the storage of every int8 layer (i32 or i8)

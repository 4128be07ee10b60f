"""Compilation targets: a table from target name to IREE compiler flags and runtime driver."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import QuantuneError
from ..model.target import Target

_LLVM_CPU = (
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
)

# Vulkan: a target with Int8 and 8-bit storage. The default (Mali Valhall, common on embedded
# boards and phones) can be overridden; `llvmpipe` is Mesa's CPU driver (lavapipe), for tests.
DEFAULT_VULKAN_TARGET = "valhall4"
VULKAN_TARGETS = ("valhall4", "valhall", "mali-g57", "mali-g78", "ampere", "rdna3", "llvmpipe")

# CPU names we map to an aarch64 triple; anything else is taken as an x86-64 CPU.
_AARCH64_PREFIXES = ("cortex-", "neoverse-", "apple-", "exynos-", "kryo", "carmel", "generic-arm")

TARGETS = ("host", "vulkan", "llvm-cpu")
# What a user picks by name; llvm-cpu is picked by naming a CPU.
NAMED_TARGETS = ("host", "vulkan")

# Flag presets. `default`: IREE's defaults. `speed` (llvm-cpu): convs channels-last and through
# im2col, integer matmuls on IREE's data-tiled mmt4d microkernels (VNNI vpdpwssd on x86 with
# avx512vnni, smlal on cortex-a53). Fastest of the presets tried for FP32 and INT8 alike,
# measured with tools/bench.py (docs/results/speed.md).
# Two flags work around IREE 3.13 limits met on MobileNetV2's INT8 build: an unpack+transpose
# dispatch of a 24-channel 1x1 conv needs 100 KB of stack and vectors over IREE's 32 KB
# "large vector" check; it compiles and runs correctly (bit-identical to the default build)
# with both limits raised, but then needs worker threads with more than IREE's default 128 KB
# of stack, hence the runtime flag.
PRESETS = ("default", "speed")
CHANNELS_LAST_FLAG = (
    "--iree-preprocessing-pass-pipeline=builtin.module(util.func("
    "iree-preprocessing-convert-conv-to-channels-last))"
)
_SPEED_LLVM_CPU = (
    CHANNELS_LAST_FLAG,
    "--iree-opt-data-tiling",
    "--iree-llvmcpu-enable-ukernels=mmt4d",
    "--iree-global-opt-use-im2col-for-convs",
    "--iree-llvmcpu-stack-allocation-limit=131072",
    "--iree-llvmcpu-fail-on-large-vector=false",
)
WORKER_STACK_FLAG = "--task_worker_stack_size=1048576"
# Process-global LLVM options an in-process compiler session refuses; a target using one is
# compiled by an iree-compile child process instead (compile.py).
GLOBAL_ONLY_FLAGS = ("--iree-llvmcpu-fail-on-large-vector",)


def needs_subprocess(target: Target) -> bool:
    return any(f.split("=")[0] in GLOBAL_ONLY_FLAGS for f in target.flags)


def cpu_triple(cpu: str) -> str:
    return "aarch64-linux-gnu" if cpu.startswith(_AARCH64_PREFIXES) else "x86_64-linux-gnu"


def get_target(
    name: str = "host",
    extra_flags: Sequence[str] = (),
    *,
    cpu: str | None = None,
    triple: str | None = None,
    vulkan_target: str | None = None,
    preset: str = "default",
) -> Target:
    """host: llvm-cpu for this machine. llvm-cpu: a named CPU (and triple). vulkan: SPIR-V.
    `preset` adds a measured flag set (see PRESETS)."""
    if preset not in PRESETS:
        raise QuantuneError(f"unknown preset '{preset}'; known: {', '.join(PRESETS)}")
    if name == "host" and cpu:
        name = "llvm-cpu"
    if preset == "speed" and name in ("host", "llvm-cpu"):
        extra_flags = (*_SPEED_LLVM_CPU, *extra_flags)
        rt_flags: tuple[str, ...] = (WORKER_STACK_FLAG,)
    elif preset == "speed":
        raise QuantuneError(f"preset 'speed' is for CPU targets; target {name} has none yet")
    else:
        rt_flags = ()
    if name == "host":
        flags = _LLVM_CPU + ("--iree-llvmcpu-target-cpu=host",)
        return Target("host", "local-task", flags + tuple(extra_flags), rt_flags, preset)
    if name == "llvm-cpu":
        if not cpu:
            raise QuantuneError("target llvm-cpu needs a CPU name")
        flags = _LLVM_CPU + (
            f"--iree-llvmcpu-target-triple={triple or cpu_triple(cpu)}",
            f"--iree-llvmcpu-target-cpu={cpu}",
        )
        return Target(cpu, "local-task", flags + tuple(extra_flags), rt_flags, preset)
    if name == "vulkan":
        if cpu:
            raise QuantuneError("a CPU name and the vulkan target conflict: choose one target")
        vt = vulkan_target or DEFAULT_VULKAN_TARGET
        flags = ("--iree-hal-target-device=vulkan", f"--iree-vulkan-target={vt}")
        return Target(f"vulkan-{vt}", "vulkan", flags + tuple(extra_flags))
    raise QuantuneError(f"unknown target '{name}'; known: {', '.join(TARGETS)}")

"""Compilation targets: a table from target name to IREE compiler flags and runtime driver."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import QuantuneError


@dataclass(frozen=True)
class Target:
    name: str
    driver: str  # IREE runtime driver that runs the vmfb
    flags: tuple[str, ...]


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


def cpu_triple(cpu: str) -> str:
    return "aarch64-linux-gnu" if cpu.startswith(_AARCH64_PREFIXES) else "x86_64-linux-gnu"


def get_target(
    name: str = "host",
    extra_flags: Sequence[str] = (),
    *,
    cpu: str | None = None,
    triple: str | None = None,
    vulkan_target: str | None = None,
) -> Target:
    """host: llvm-cpu for this machine. llvm-cpu: a named CPU (and triple). vulkan: SPIR-V."""
    if name == "host" and cpu:
        name = "llvm-cpu"
    if name == "host":
        flags = _LLVM_CPU + ("--iree-llvmcpu-target-cpu=host",)
        return Target("host", "local-task", flags + tuple(extra_flags))
    if name == "llvm-cpu":
        if not cpu:
            raise QuantuneError("target llvm-cpu needs a CPU name (--target-cpu)")
        flags = _LLVM_CPU + (
            f"--iree-llvmcpu-target-triple={triple or cpu_triple(cpu)}",
            f"--iree-llvmcpu-target-cpu={cpu}",
        )
        return Target(cpu, "local-task", flags + tuple(extra_flags))
    if name == "vulkan":
        if cpu:
            raise QuantuneError("--target-cpu and --target vulkan conflict: choose one target")
        vt = vulkan_target or DEFAULT_VULKAN_TARGET
        flags = ("--iree-hal-target-device=vulkan", f"--iree-vulkan-target={vt}")
        return Target(f"vulkan-{vt}", "vulkan", flags + tuple(extra_flags))
    raise QuantuneError(f"unknown target '{name}'; known: {', '.join(TARGETS)}")

"""Compilation targets: a table from target name to IREE compiler flags. No logic beyond lookup."""

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

TARGETS: dict[str, Target] = {
    "host": Target("host", "local-task", _LLVM_CPU + ("--iree-llvmcpu-target-cpu=host",)),
}


def get_target(name: str, extra_flags: Sequence[str] = ()) -> Target:
    if name not in TARGETS:
        raise QuantuneError(f"unknown target '{name}'; known: {', '.join(sorted(TARGETS))}")
    t = TARGETS[name]
    return Target(t.name, t.driver, t.flags + tuple(extra_flags))

"""A compilation target: what iree-compile needs to build for it and the runtime to run it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    driver: str  # IREE runtime driver that runs the vmfb
    flags: tuple[str, ...]
    # Runtime flags the vmfb needs (an app loading it must pass them to IREE's runtime).
    runtime_flags: tuple[str, ...] = ()
    preset: str = "default"

"""The engine: the one path from a plan to running code. Apply the plan (integer IR), add taps,
compile for the target, load into the runtime. Every stage and tool goes through it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..ir.apply_plan import apply_plan
from ..ir.taps import TapMap, tap_bytecode
from ..model.graph import ImportedModel
from ..model.plan import Plan
from ..model.target import Target
from .compile import compile_vmfb, compile_vmfb_reproducible
from .runtime import Runner


@dataclass(frozen=True)
class Lowered:
    """Input-phase bytecode ready to compile, and where its taps are (None: no taps)."""

    bytecode: bytes
    function: str
    taps: TapMap | None = None


@dataclass(frozen=True)
class Loaded:
    """A compiled, loaded module: call it with the model's inputs."""

    runner: Runner
    taps: TapMap | None
    compile_seconds: float

    def __call__(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.runner(inputs)

    @property
    def invocations(self) -> int:
        return self.runner.invocations


class Engine:
    """One imported model on one target."""

    def __init__(self, model: ImportedModel, target: Target) -> None:
        self.model = model
        self.target = target

    def lower(self, plan: Plan | None = None, taps: Sequence[int] | None = None) -> Lowered:
        """The model with `plan` applied (FP32 when None) and, when `taps` is given, those
        layers' inputs and outputs as extra results."""
        bytecode = self.model.bytecode if plan is None else apply_plan(self.model, plan)
        if taps is None:
            return Lowered(bytecode, self.model.function)
        tapped = tap_bytecode(bytecode, taps)
        return Lowered(tapped.bytecode, tapped.taps.function, tapped.taps)

    def build(self, plan: Plan | None = None) -> bytes:
        """The vmfb to ship: byte-for-byte reproducible."""
        return compile_vmfb_reproducible(self.lower(plan).bytecode, self.target)

    def load(
        self, plan: Plan | None = None, *, taps: Sequence[int] | None = None, what: str = "model"
    ) -> Loaded:
        """Compiled in-process and loaded, for running here."""
        t0 = time.perf_counter()
        lowered = self.lower(plan, taps)
        vmfb = compile_vmfb(lowered.bytecode, self.target, what=what)
        runner = self.run_vmfb(vmfb, lowered.function)
        return Loaded(runner, lowered.taps, time.perf_counter() - t0)

    def run_vmfb(self, vmfb: bytes, function: str | None = None) -> Runner:
        """A built vmfb of this model, loaded for running here."""
        return Runner(
            vmfb,
            function or self.model.function,
            self.target.driver,
            self.target.runtime_flags,
        )

"""The engine: the one path from a plan to running code. Apply the plan (integer IR), add taps,
compile for the target, load into the runtime. Every stage and tool goes through it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..ir.apply_plan import apply_plan
from ..ir.layers import layer_table
from ..ir.relayout import channels_last
from ..ir.taps import TapMap, tap_bytecode
from ..model.graph import ImportedModel
from ..model.layer import Layer
from ..model.plan import Plan
from ..model.target import IntegerForm, Target
from .compile import compile_vmfb, compile_vmfb_reproducible
from .runtime import Runner
from .targets import for_layers, layer_form


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
        self._layers: tuple[Layer, ...] | None = None
        self.target = for_layers(target, self.layers)

    @property
    def layers(self) -> tuple[Layer, ...]:
        if self._layers is None:
            self._layers = layer_table(self.model)
        return self._layers

    def forms(self, plan: Plan) -> dict[int, IntegerForm]:
        """The integer form of each int8 layer of `plan` on this target."""
        by_id = {layer.id: layer for layer in self.layers}
        return {lp.layer_id: layer_form(self.target, by_id[lp.layer_id]) for lp in plan.int8_layers}

    def lower(self, plan: Plan | None = None, taps: Sequence[int] | None = None) -> Lowered:
        """The model with `plan` applied (FP32 when None) in this target's integer forms, with,
        when `taps` is given, those layers' inputs and outputs as extra results, and its float
        convs channels-last when the target wants it."""
        bytecode = self.model.bytecode
        if plan is not None:
            bytecode = apply_plan(self.model, plan, self.forms(plan))
        tap_map = None
        if taps is not None:
            tapped = tap_bytecode(bytecode, taps)
            bytecode, tap_map = tapped.bytecode, tapped.taps
        if self.target.channels_last:
            bytecode, _ = channels_last(bytecode)
        return Lowered(bytecode, tap_map.function if tap_map else self.model.function, tap_map)

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

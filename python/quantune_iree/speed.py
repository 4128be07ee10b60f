"""Speed-aware planning: measures, per layer kind, whether INT8 makes the model faster or slower
on this machine, and the latency of a plan.

INT8 is not always faster (IREE's depthwise convs, small layers whose quantize/dequantize cost
more than they save). For each layer kind present, the full-INT8 model is timed against the
same model with that kind's layers FP32; a kind whose FP32 variant is faster makes the model
slower in INT8, so under `--objective speed|balanced` its layers stay FP32: INT8 there would
spend accuracy to lose time. Timings are medians of interleaved runs (machine noise hits every
build alike) and can only be taken on the machine the build runs on, i.e. the host target.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .compile import compile_vmfb
from .errors import QuantuneError
from .importer import ImportedModel
from .layers import Layer
from .plan import Plan, with_precisions
from .quantize import quantize_model
from .runtime import Runner
from .targets import Target

OBJECTIVES = ("accuracy", "balanced", "speed")
# A kind counts as slower in INT8 only beyond this relative margin (timing noise).
MARGIN = 0.02


@dataclass(frozen=True)
class KindSpeed:
    """Model latency with one layer kind INT8 vs FP32 (kind "all": the whole model)."""

    kind: str
    layers: int
    int8_ms: float  # model latency with these layers INT8 (all others INT8 too)
    fp32_ms: float  # ... with these layers FP32

    @property
    def int8_slower(self) -> bool:
        return self.fp32_ms < self.int8_ms * (1 - MARGIN)


def time_calls(calls: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median milliseconds per call, the calls interleaved, after one warm-up each."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(1000 * (time.perf_counter() - t0))
    return {name: statistics.median(v) for name, v in times.items()}


def _runner(model: ImportedModel, plan: Plan | None, target: Target) -> Runner:
    bytecode = model.bytecode if plan is None else quantize_model(model, plan)
    return Runner(compile_vmfb(bytecode, target, what="speed probe"), model.function)


def measure_kinds(
    model: ImportedModel,
    layers: Sequence[Layer],
    int8_plan: Plan,
    target: Target,
    sample: Sequence[np.ndarray],
    reps: int = 10,
) -> tuple[KindSpeed, ...]:
    """One build per layer kind (that kind FP32, the rest INT8) and the FP32 build, against the
    full-INT8 build. The last entry, kind "all", compares the whole model."""
    if target.driver != "local-task" or target.name != "host":
        raise QuantuneError(
            f"--objective speed/balanced measures INT8 vs FP32 on this machine, so it needs "
            f"--target host (target is {target.name})"
        )
    int8_ids = {lp.layer_id for lp in int8_plan.int8_layers}
    kinds: dict[str, list[int]] = {}
    for layer in layers:
        if layer.id in int8_ids:
            kinds.setdefault(layer.kind, []).append(layer.id)
    calls = {"int8": _runner(model, int8_plan, target)}
    for kind, ids in kinds.items():
        calls[kind] = _runner(model, with_precisions(int8_plan, ids), target)
    calls["all"] = _runner(model, None, target)
    med = time_calls({k: (lambda r=r: r(list(sample))) for k, r in calls.items()}, reps)
    speeds = [KindSpeed(k, len(ids), med["int8"], med[k]) for k, ids in kinds.items()]
    return (*speeds, KindSpeed("all", len(int8_ids), med["int8"], med["all"]))


def slow_layer_reasons(
    layers: Sequence[Layer], speeds: Sequence[KindSpeed], target: Target
) -> dict[int, str]:
    """Layer id → why it stays FP32, for the layers of kinds INT8 makes slower; every layer when
    the whole model is slower in INT8 than in FP32."""
    whole = next((s for s in speeds if s.kind == "all"), None)
    if whole is not None and whole.int8_slower:
        return {
            layer.id: (
                f"INT8 does not pay on {target.name}: the FP32 model runs in {whole.fp32_ms:.2f} "
                f"ms, the full-INT8 one in {whole.int8_ms:.2f} ms"
            )
            for layer in layers
        }
    slow = {s.kind: s for s in speeds if s.int8_slower and s.kind != "all"}
    return {
        layer.id: (
            f"INT8 slower on {target.name}: the model runs in {slow[layer.kind].fp32_ms:.2f} ms "
            f"with its {layer.kind} layers FP32 vs {slow[layer.kind].int8_ms:.2f} ms INT8"
        )
        for layer in layers
        if layer.kind in slow
    }


def plan_latency(
    model: ImportedModel, vmfb: bytes, target: Target, sample: Sequence[np.ndarray], reps: int = 10
) -> tuple[float, float]:
    """(this build's, the FP32 build's) median latency in ms on this machine."""
    built = Runner(vmfb, model.function)
    fp32 = _runner(model, None, target)
    med = time_calls(
        {"plan": lambda: built(list(sample)), "fp32": lambda: fp32(list(sample))}, reps
    )
    return med["plan"], med["fp32"]

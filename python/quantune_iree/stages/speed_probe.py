"""The speed probe: measures, per layer kind, whether INT8 makes the model faster or slower on
this machine, and the latency of a build.

INT8 is not always faster (IREE's depthwise convs, small layers whose quantize/dequantize cost
more than they save). For each layer kind present, the full-INT8 model is timed against the
same model with that kind's layers FP32; the selection (algo.selection.slow_layers) keeps FP32
the kinds whose FP32 variant is faster. Timings are medians of interleaved runs (machine noise
hits every build alike) and can only be taken on the machine the build runs on: the host.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..backend.engine import Engine
from ..errors import QuantuneError
from ..model.layer import Layer
from ..model.plan import Plan, with_precisions
from ..model.results import KindSpeed


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


def check_probe_target(engine: Engine) -> None:
    target = engine.target
    if target.driver != "local-task" or target.name != "host":
        raise QuantuneError(
            "the speed objectives time INT8 against FP32 on this machine, so they need the "
            f"host target (target is {target.name})"
        )


def measure_kinds(
    engine: Engine,
    layers: Sequence[Layer],
    int8_plan: Plan,
    sample: Sequence[np.ndarray],
    reps: int = 10,
) -> tuple[KindSpeed, ...]:
    """One build per layer kind (that kind FP32, the rest INT8) and the FP32 build, against the
    full-INT8 build. The last entry, kind "all", compares the whole model."""
    check_probe_target(engine)
    int8_ids = {lp.layer_id for lp in int8_plan.int8_layers}
    kinds: dict[str, list[int]] = {}
    for layer in layers:
        if layer.id in int8_ids:
            kinds.setdefault(layer.kind, []).append(layer.id)
    calls = {"int8": engine.load(int8_plan, what="speed probe")}
    for kind, ids in kinds.items():
        calls[kind] = engine.load(with_precisions(int8_plan, ids), what="speed probe")
    calls["all"] = engine.load(None, what="speed probe")
    med = time_calls({k: (lambda r=r: r(list(sample))) for k, r in calls.items()}, reps)
    speeds = [KindSpeed(k, len(ids), med["int8"], med[k]) for k, ids in kinds.items()]
    return (*speeds, KindSpeed("all", len(int8_ids), med["int8"], med["all"]))


def plan_latency(
    engine: Engine, vmfb: bytes, sample: Sequence[np.ndarray], reps: int = 10
) -> tuple[float, float]:
    """(this build's, the FP32 build's) median latency in ms on this machine."""
    built = engine.run_vmfb(vmfb)
    fp32 = engine.load(None, what="speed probe")
    med = time_calls(
        {"plan": lambda: built(list(sample)), "fp32": lambda: fp32(list(sample))}, reps
    )
    return med["plan"], med["fp32"]

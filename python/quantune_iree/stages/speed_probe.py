"""The speed probe: measures, per layer kind, whether INT8 makes the model faster or slower on
this machine (or, for cortex-a53, by the A53 estimator), and the latency of a build.

INT8 is not always faster (IREE's depthwise convs, small layers whose quantize/dequantize cost
more than they save). For each layer kind present, the full-INT8 model is timed against the
same model with that kind's layers FP32; the selection (algo.selection.slow_layers) keeps FP32
the kinds whose FP32 variant is faster. Timings are medians of interleaved runs (machine noise
hits every build alike) and can only be taken on the machine the build runs on: the host. For
cortex-a53 the builds are priced instead by an A53 timing model run under qemu (backend.a53est):
estimated compute cycles, labelled as estimates.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..backend.a53est import A53Estimator
from ..backend.engine import Engine
from ..errors import QuantuneError
from ..model.layer import Layer
from ..model.plan import Plan, with_precisions
from ..model.results import KindSpeed
from ..model.target import Target


def interleaved_times(calls: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Milliseconds of every call, the calls interleaved (run i of each back to back), after
    one warm-up each."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(1000 * (time.perf_counter() - t0))
    return times


def time_calls(calls: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median milliseconds per call, the calls interleaved, after one warm-up each."""
    return {name: statistics.median(v) for name, v in interleaved_times(calls, reps).items()}


def check_probe_target(target: Target, estimator: A53Estimator | None = None) -> None:
    if target.driver == "local-task" and target.name == "host":
        return
    if target.name == "cortex-a53" and estimator is not None:
        return
    raise QuantuneError(
        "the speed objectives time INT8 against FP32 on this machine (the host target) or "
        "estimate it for cortex-a53 with the A53 estimator (--a53est); target is "
        f"{target.name}" + ("" if target.name != "cortex-a53" else ", no estimator given")
    )


def _costs(
    engine: Engine,
    plans: dict[str, Plan | None],
    sample: Sequence[np.ndarray],
    reps: int,
    estimator: A53Estimator | None,
) -> tuple[dict[str, float], str]:
    """Each plan's cost: median ms timed here (interleaved), or estimated A53 M cycles."""
    if estimator is None:
        calls = {k: engine.load(p, what="speed probe") for k, p in plans.items()}
        return time_calls({k: (lambda r=r: r(list(sample))) for k, r in calls.items()}, reps), "ms"
    vmfbs = [engine.build(p) for p in plans.values()]
    cycles = estimator.cycles(
        vmfbs, engine.model.function, sample, engine.target.runtime_flags, len(engine.model.outputs)
    )
    return {k: c / 1e6 for k, c in zip(plans, cycles, strict=True)}, "Mcycles"


def measure_kinds(
    engine: Engine,
    layers: Sequence[Layer],
    int8_plan: Plan,
    sample: Sequence[np.ndarray],
    reps: int = 10,
    estimator: A53Estimator | None = None,
) -> tuple[KindSpeed, ...]:
    """One build per layer kind (that kind FP32, the rest INT8) and the FP32 build, against the
    full-INT8 build, timed on this host or, with `estimator`, estimated for a Cortex-A53. The
    last entry, kind "all", compares the whole model."""
    check_probe_target(engine.target, estimator)
    int8_ids = {lp.layer_id for lp in int8_plan.int8_layers}
    kinds: dict[str, list[int]] = {}
    for layer in layers:
        if layer.id in int8_ids:
            kinds.setdefault(layer.kind, []).append(layer.id)
    plans: dict[str, Plan | None] = {"int8": int8_plan}
    for kind, ids in kinds.items():
        plans[kind] = with_precisions(int8_plan, ids)
    plans["all"] = None
    cost, unit = _costs(engine, plans, sample, reps, estimator)
    speeds = [KindSpeed(k, len(ids), cost["int8"], cost[k], unit) for k, ids in kinds.items()]
    return (*speeds, KindSpeed("all", len(int8_ids), cost["int8"], cost["all"], unit))


def plan_latency(
    engine: Engine,
    vmfb: bytes,
    sample: Sequence[np.ndarray],
    reps: int = 10,
    estimator: A53Estimator | None = None,
) -> tuple[float, float, str]:
    """(this build's, the FP32 build's) cost: median ms on this machine, or estimated A53
    M cycles with `estimator`; and the unit."""
    if estimator is not None:
        fp32 = engine.build(None)
        cycles = estimator.cycles(
            [vmfb, fp32],
            engine.model.function,
            sample,
            engine.target.runtime_flags,
            len(engine.model.outputs),
        )
        return cycles[0] / 1e6, cycles[1] / 1e6, "Mcycles"
    built = engine.run_vmfb(vmfb)
    fp32 = engine.load(None, what="speed probe")
    med = time_calls(
        {"plan": lambda: built(list(sample)), "fp32": lambda: fp32(list(sample))}, reps
    )
    return med["plan"], med["fp32"], "ms"

"""Chooses which layers stay FP32, from the sensitivity ranking: the top K, a fraction, or the
fewest that reach an output-SQNR target (which spends extra inference passes, counted)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .calibrate import CalibrationResult
from .compile import compile_vmfb
from .errors import QuantuneError
from .importer import ImportedModel
from .metrics import ErrorAccumulator
from .plan import Plan, with_precisions
from .quantize import quantize_model
from .ranking import RankedLayer
from .runtime import Runner
from .targets import Target, get_target


@dataclass(frozen=True)
class Selection:
    fp32: tuple[int, ...]  # layer ids kept FP32, most sensitive first
    extra_passes: int  # inference passes spent beyond the analysis's two
    output_sqnr_db: float | None  # on the calibration set, when it was measured
    rule: str  # how the set was chosen, for the report


def top_k(ranking: Sequence[RankedLayer], k: int) -> tuple[int, ...]:
    if k < 0:
        raise QuantuneError(f"--fp32-layers must be >= 0, got {k}")
    return tuple(r.layer_id for r in ranking[:k])


def fraction_k(n: int, fraction: float) -> int:
    if not 0.0 <= fraction <= 1.0:
        raise QuantuneError(f"--fp32-fraction must be within [0, 1], got {fraction}")
    return math.ceil(round(fraction * n, 9))


def output_sqnr(
    model: ImportedModel,
    plan: Plan,
    calibration: CalibrationResult,
    samples: Iterable[Sequence[np.ndarray]],
    target: Target | None = None,
) -> float:
    """One inference pass of the plan's model over the calibration set, against FP32."""
    ref = calibration.reference
    if ref is None:
        raise QuantuneError("the FP32 pass kept no reference outputs")
    runner = Runner(
        compile_vmfb(quantize_model(model, plan), target or get_target("host")), model.function
    )
    acc = ErrorAccumulator()
    for i, sample in enumerate(samples):
        outputs = runner(sample)
        for want, got in zip(ref.outputs[i], outputs, strict=True):
            acc.add(want, got)
    return acc.sqnr_db


def search_min_sqnr(
    model: ImportedModel,
    plan: Plan,
    ranking: Sequence[RankedLayer],
    calibration: CalibrationResult,
    samples: Callable[[], Iterable[Sequence[np.ndarray]]],
    min_sqnr_db: float,
    int8_sqnr_db: float,
) -> Selection:
    """The smallest top-K of the ranking whose model output reaches `min_sqnr_db` on the
    calibration set, by bisection on K (output SQNR grows with K): about log2(layers) passes."""
    if int8_sqnr_db >= min_sqnr_db:
        return Selection((), 0, int8_sqnr_db, f"full INT8 already reaches {min_sqnr_db} dB")
    lo, hi = 0, len(ranking)  # K=lo fails (measured), K=hi (all FP32) is exact
    best_sqnr: float | None = math.inf
    passes = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        value = output_sqnr(
            model, with_precisions(plan, top_k(ranking, mid)), calibration, samples()
        )
        passes += 1
        if value >= min_sqnr_db:
            hi, best_sqnr = mid, value
        else:
            lo = mid
    return Selection(
        top_k(ranking, hi),
        passes,
        best_sqnr,
        f"fewest most-sensitive layers in FP32 for output SQNR >= {min_sqnr_db} dB",
    )

"""The output-SQNR search: the fewest most-sensitive layers in FP32 for a target output SQNR on
the calibration set, each candidate measured by one inference pass (counted in the selection)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..algo.metrics import ErrorAccumulator
from ..algo.selection import search_min_sqnr
from ..backend.engine import Engine
from ..errors import QuantuneError
from ..model.plan import Plan, with_precisions
from ..model.results import CalibrationResult, RankedLayer, Selection


def output_sqnr(
    engine: Engine,
    plan: Plan,
    calibration: CalibrationResult,
    samples: Iterable[Sequence[np.ndarray]],
) -> float:
    """One inference pass of the plan's model over the calibration set, against FP32."""
    ref = calibration.reference
    if ref is None:
        raise QuantuneError("the FP32 pass kept no reference outputs")
    runner = engine.load(plan)
    acc = ErrorAccumulator()
    for i, sample in enumerate(samples):
        outputs = runner(sample)
        for want, got in zip(ref.outputs[i], outputs, strict=True):
            acc.add(want, got)
    return acc.sqnr_db


def min_sqnr_selection(
    engine: Engine,
    int8_plan: Plan,
    ranking: Sequence[RankedLayer],
    calibration: CalibrationResult,
    samples: Callable[[], Iterable[Sequence[np.ndarray]]],
    min_sqnr_db: float,
    int8_sqnr_db: float,
) -> Selection:
    """search_min_sqnr with each candidate plan measured by `output_sqnr`."""
    return search_min_sqnr(
        ranking,
        min_sqnr_db,
        int8_sqnr_db,
        lambda fp32: output_sqnr(engine, with_precisions(int8_plan, fp32), calibration, samples()),
    )

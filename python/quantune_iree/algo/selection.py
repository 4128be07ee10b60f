"""Chooses which layers stay FP32, from the sensitivity ranking: the top K, a fraction, the
fewest that reach an output-SQNR target (given a way to measure it), and the speed objective's
kinds that INT8 makes slower. Pure: measuring is the caller's business."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from ..errors import QuantuneError
from ..model.layer import Layer
from ..model.results import KindSpeed, RankedLayer, Selection

OBJECTIVES = ("accuracy", "balanced", "speed")


def top_k(ranking: Sequence[RankedLayer], k: int) -> tuple[int, ...]:
    if k < 0:
        raise QuantuneError(f"the number of FP32 layers must be >= 0, got {k}")
    return tuple(r.layer_id for r in ranking[:k])


def fraction_k(n: int, fraction: float) -> int:
    if not 0.0 <= fraction <= 1.0:
        raise QuantuneError(f"the fraction of FP32 layers must be within [0, 1], got {fraction}")
    return math.ceil(round(fraction * n, 9))


def search_min_sqnr(
    ranking: Sequence[RankedLayer],
    min_sqnr_db: float,
    int8_sqnr_db: float,
    output_sqnr: Callable[[tuple[int, ...]], float],
) -> Selection:
    """The smallest top-K of the ranking whose model output reaches `min_sqnr_db`, by bisection
    on K (output SQNR grows with K): about log2(layers) calls of `output_sqnr(fp32_ids)`, each
    an inference pass the selection reports."""
    if int8_sqnr_db >= min_sqnr_db:
        return Selection((), 0, int8_sqnr_db, f"full INT8 already reaches {min_sqnr_db} dB")
    lo, hi = 0, len(ranking)  # K=lo fails (measured), K=hi (all FP32) is exact
    best_sqnr: float | None = math.inf
    passes = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        value = output_sqnr(top_k(ranking, mid))
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


def slow_layers(layers: Sequence[Layer], speeds: Sequence[KindSpeed]) -> dict[int, KindSpeed]:
    """Layer id → the measurement that keeps it FP32, for the layers of kinds INT8 makes slower;
    every layer (with the whole-model measurement) when the model is slower in INT8."""
    whole = next((s for s in speeds if s.kind == "all"), None)
    if whole is not None and whole.int8_slower:
        return {layer.id: whole for layer in layers}
    slow = {s.kind: s for s in speeds if s.int8_slower and s.kind != "all"}
    return {layer.id: slow[layer.kind] for layer in layers if layer.kind in slow}


def apply_objective(
    selection: Selection, objective: str, slow: Mapping[int, KindSpeed], target_name: str
) -> Selection:
    """The selection under a speed objective: `balanced` adds the slow layers to the sensitive
    ones, `speed` keeps only the slow ones FP32; `accuracy` leaves it as it is."""
    if objective not in OBJECTIVES:
        raise QuantuneError(f"unknown objective '{objective}'; known: {', '.join(OBJECTIVES)}")
    if objective == "accuracy":
        return selection
    kept = [] if objective == "speed" else list(selection.fp32)
    fp32_ids = tuple(kept + [i for i in slow if i not in kept])
    rule = (
        f"{selection.rule}, plus" if objective == "balanced" else "objective speed:"
    ) + f" {len(slow)} layers of kinds INT8 makes slower on {target_name}"
    return Selection(fp32_ids, selection.extra_passes, selection.output_sqnr_db, rule)


def with_fp32_kinds(
    selection: Selection, layers: Sequence[Layer], kinds: Sequence[str], target_name: str
) -> tuple[Selection, tuple[int, ...]]:
    """The selection plus every layer of `kinds` (the target keeps them FP32: INT8 cannot win
    there), and the ids it added."""
    added = tuple(
        layer.id for layer in layers if layer.kind in kinds and layer.id not in selection.fp32
    )
    if not added:
        return selection, ()
    rule = f"{selection.rule}, plus {len(added)} {'/'.join(kinds)} layers ({target_name} default)"
    return (
        Selection(selection.fp32 + added, selection.extra_passes, selection.output_sqnr_db, rule),
        added,
    )

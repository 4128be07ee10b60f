"""Ranks layers by sensitivity: most sensitive first. Pure functions of the metrics table.

Each metric is turned into a "higher = more sensitive" score (lower weight SQNR, lower
activation SQNR, larger SQNR delta, larger activation MSE), normalised across layers by rank
(0 … 1, ties averaged, so no single outlier dominates), and combined with weights. Ties are
broken by graph order (smaller layer id first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import QuantuneError
from ..model.results import LayerMetrics, RankedLayer

# Default weights of the combined (QuantuneV2) score, set by ablation on the dev images
# (docs/results/README.md): SQNR delta, the noise a layer adds on top of what reached it, picked
# the layers whose FP32 copy helps (4 FP32 layers: MobileNetV2 84.4% top-1 agreement vs 78.3%
# random; Lite0 93.1% vs 91.0%). Activation SQNR and MSE, which grow with depth, and weight SQNR
# did no better than random alone, and mixing them in (0.4/0.3/0.2/0.1, then 0.85/0/0.1/0.05)
# lost agreement at K <= 4. They stay measured, reported and available via --metric-weight.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "sqnr_delta": 1.0,
    "act_sqnr": 0.0,
    "weight_sqnr": 0.0,
    "act_mse": 0.0,
}
RANKERS = ("combined", "sqnr_delta", "act_sqnr", "weight_sqnr", "act_mse", "random")
_FINITE_DB = 200.0  # stands in for ±inf SQNR (exact layers) when ranking


def _finite(values: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(values, posinf=_FINITE_DB, neginf=-_FINITE_DB), -1e300, 1e300)


def sensitivity_scores(metrics: Sequence[LayerMetrics]) -> dict[str, np.ndarray]:
    """Per metric, a score per layer where higher means more sensitive."""
    return {
        "sqnr_delta": _finite(np.array([m.metrics.sqnr_delta_db for m in metrics])),
        "act_sqnr": -_finite(np.array([m.metrics.act_sqnr_db for m in metrics])),
        "weight_sqnr": -_finite(np.array([m.metrics.weight_sqnr_db for m in metrics])),
        "act_mse": _finite(np.array([m.metrics.act_mse for m in metrics])),
    }


def _rank_normalise(x: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1]; a constant metric maps to 0.5 everywhere."""
    if x.size <= 1:
        return np.full(x.size, 0.5)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(x.size)
    for v in np.unique(x):  # average the ranks of ties
        tie = x == v
        ranks[tie] = ranks[tie].mean()
    return ranks / (x.size - 1)


def rank_layers(
    metrics: Sequence[LayerMetrics],
    ranker: str = "combined",
    weights: Mapping[str, float] | None = None,
    seed: int = 0,
) -> tuple[RankedLayer, ...]:
    """Layers ordered most sensitive first."""
    if ranker not in RANKERS:
        raise QuantuneError(f"unknown ranker '{ranker}'; choose from {', '.join(RANKERS)}")
    if not metrics:
        return ()
    scores = sensitivity_scores(metrics)
    if ranker == "random":
        score = np.random.default_rng(seed).random(len(metrics))
    elif ranker == "combined":
        w = dict(DEFAULT_WEIGHTS if weights is None else weights)
        unknown = set(w) - set(scores)
        if unknown:
            raise QuantuneError(
                f"unknown metric weight {', '.join(sorted(unknown))}; "
                f"metrics are {', '.join(scores)}"
            )
        score = sum(w.get(k, 0.0) * _rank_normalise(v) for k, v in scores.items())
    else:
        score = _rank_normalise(scores[ranker])
    ids = np.array([m.layer_id for m in metrics])
    order = np.lexsort((ids, -np.asarray(score)))  # score descending, then graph order
    return tuple(
        RankedLayer(metrics[i].layer_id, metrics[i].node, float(score[i]), r)
        for r, i in enumerate(order)
    )

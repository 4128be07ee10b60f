"""Ranking: deterministic, most sensitive first, ties by graph order; selection helpers."""

from __future__ import annotations

import math

import pytest
from quantune_iree.algo.ranking import RANKERS, rank_layers
from quantune_iree.algo.selection import fraction_k, top_k
from quantune_iree.errors import QuantuneError
from quantune_iree.model.plan import SensitivityMetrics
from quantune_iree.model.results import LayerMetrics


def _m(i: int, delta: float, act: float = 30.0, w: float = 40.0, mse: float = 0.1) -> LayerMetrics:
    return LayerMetrics(
        i, f"n{i}", "conv", SensitivityMetrics(w, 1e-6, act + delta, act, mse, delta)
    )


METRICS = [_m(0, 1.0), _m(1, 9.0), _m(2, 4.0, act=5.0), _m(3, math.inf, w=20.0)]


def test_single_metric_rankers() -> None:
    # SQNR delta: larger adds more noise; inf (exact input, finite output) is the most.
    assert [r.layer_id for r in rank_layers(METRICS, "sqnr_delta")] == [3, 1, 2, 0]
    assert [r.layer_id for r in rank_layers(METRICS, "act_sqnr")][0] == 2  # lowest SQNR
    assert [r.layer_id for r in rank_layers(METRICS, "weight_sqnr")][0] == 3
    ranked = rank_layers(METRICS, "sqnr_delta")
    assert [r.rank for r in ranked] == [0, 1, 2, 3]
    assert ranked[0].score >= ranked[1].score >= ranked[2].score


def test_combined_is_weighted_and_ties_follow_graph_order() -> None:
    only_delta = rank_layers(METRICS, "combined", {"sqnr_delta": 1.0})
    assert [r.layer_id for r in only_delta] == [3, 1, 2, 0]
    ties = [_m(i, 2.0) for i in range(4)]
    assert [r.layer_id for r in rank_layers(ties, "combined")] == [0, 1, 2, 3]
    assert rank_layers(METRICS) == rank_layers(list(METRICS))  # deterministic


def test_random_ranker_is_seeded() -> None:
    a = rank_layers(METRICS, "random", seed=1)
    assert a == rank_layers(METRICS, "random", seed=1)
    orders = {tuple(r.layer_id for r in rank_layers(METRICS, "random", seed=s)) for s in range(8)}
    assert len(orders) > 1


def test_bad_ranker_or_weight() -> None:
    assert "combined" in RANKERS
    with pytest.raises(QuantuneError, match="unknown ranker 'oracle'"):
        rank_layers(METRICS, "oracle")
    with pytest.raises(QuantuneError, match="unknown metric weight speed"):
        rank_layers(METRICS, "combined", {"speed": 1.0})


def test_selection_helpers() -> None:
    ranked = rank_layers(METRICS, "sqnr_delta")
    assert top_k(ranked, 2) == (3, 1) and top_k(ranked, 0) == ()
    assert fraction_k(53, 0.05) == 3 and fraction_k(50, 0.1) == 5 and fraction_k(6, 0.0) == 0
    with pytest.raises(QuantuneError, match="must be >= 0"):
        top_k(ranked, -1)

"""Selection: top K, fractions, the output-SQNR bisection and the speed objectives."""

from __future__ import annotations

import pytest
from quantune_iree.algo.selection import (
    apply_objective,
    fraction_k,
    search_min_sqnr,
    slow_layers,
    top_k,
    with_fp32_kinds,
)
from quantune_iree.errors import QuantuneError
from quantune_iree.io.report import slow_reasons
from quantune_iree.model.results import KindSpeed, RankedLayer, Selection


class _Layer:
    def __init__(self, i: int, kind: str) -> None:
        self.id, self.kind = i, kind


LAYERS = [_Layer(0, "conv"), _Layer(1, "depthwise_conv"), _Layer(2, "conv"), _Layer(3, "matmul")]


def _ranking(n: int) -> list[RankedLayer]:
    return [
        RankedLayer(layer_id=n - 1 - r, node=f"n{n - 1 - r}", score=1.0, rank=r) for r in range(n)
    ]


def test_top_k_takes_the_most_sensitive_and_refuses_negative_k() -> None:
    assert top_k(_ranking(5), 2) == (4, 3)
    assert top_k(_ranking(5), 9) == (4, 3, 2, 1, 0)
    with pytest.raises(QuantuneError, match="must be >= 0"):
        top_k(_ranking(5), -1)


def test_fraction_rounds_up_and_is_bounded() -> None:
    assert fraction_k(53, 0.05) == 3 and fraction_k(20, 0.05) == 1 and fraction_k(7, 0.0) == 0
    with pytest.raises(QuantuneError, match=r"within \[0, 1\]"):
        fraction_k(10, 1.5)


def test_min_sqnr_bisection_finds_the_smallest_k_and_counts_its_passes() -> None:
    ranking = _ranking(16)
    seen = []

    def sqnr(fp32: tuple[int, ...]) -> float:
        seen.append(len(fp32))
        return 10.0 + len(fp32)  # grows with K: K >= 9 reaches 19 dB

    sel = search_min_sqnr(ranking, 19.0, 10.0, sqnr)
    assert len(sel.fp32) == 9 and sel.fp32 == top_k(ranking, 9)
    assert sel.extra_passes == len(seen) <= 5 and sel.output_sqnr_db == 19.0
    assert search_min_sqnr(ranking, 5.0, 10.0, sqnr).extra_passes == 0  # full INT8 suffices


def test_slow_kinds_stay_fp32_and_a_model_slower_in_int8_stays_fp32() -> None:
    speeds = [
        KindSpeed("conv", 2, 10.0, 12.0),  # FP32 slower: stays INT8
        KindSpeed("depthwise_conv", 1, 10.0, 9.0),  # FP32 faster: INT8 slower, keep FP32
        KindSpeed("matmul", 1, 10.0, 9.95),  # within the noise margin: INT8
        KindSpeed("all", 4, 10.0, 11.0),
    ]
    slow = slow_layers(LAYERS, speeds)
    assert set(slow) == {1}
    reasons = slow_reasons(LAYERS, slow, "host")
    assert "9.00 ms" in reasons[1] and "depthwise_conv layers FP32" in reasons[1]
    speeds[-1] = KindSpeed("all", 4, 10.0, 8.0)
    slow = slow_layers(LAYERS, speeds)
    assert set(slow) == {0, 1, 2, 3}
    assert all("does not pay" in r for r in slow_reasons(LAYERS, slow, "host").values())


def test_objectives_merge_sensitive_and_slow_layers() -> None:
    sel = Selection((3, 0), 0, None, "top 2 of 4")
    slow = {1: KindSpeed("depthwise_conv", 1, 10.0, 9.0), 0: KindSpeed("conv", 1, 10.0, 9.0)}
    assert apply_objective(sel, "accuracy", slow, "host") is sel
    balanced = apply_objective(sel, "balanced", slow, "host")
    assert balanced.fp32 == (3, 0, 1) and balanced.rule.startswith("top 2 of 4, plus 2 layers")
    assert apply_objective(sel, "speed", slow, "host").fp32 == (1, 0)
    with pytest.raises(QuantuneError, match="unknown objective"):
        apply_objective(sel, "fastest", slow, "host")


def test_a_targets_fp32_kinds_join_the_sensitive_layers() -> None:
    layers = [*LAYERS, _Layer(4, "depthwise_conv")]
    sel = Selection((1, 0), 0, None, "top 2 of 5")
    kept, added = with_fp32_kinds(sel, layers, ("depthwise_conv",), "cortex-a53")
    assert added == (4,) and kept.fp32 == (1, 0, 4)
    assert kept.rule == "top 2 of 5, plus 1 depthwise_conv layers (cortex-a53 default)"
    assert with_fp32_kinds(sel, layers, ("batch_matmul",), "x") == (sel, ())

"""Error metrics: definitions from REFERENCE §1."""

from __future__ import annotations

import math

import numpy as np
import pytest
from quantune_iree.algo.metrics import ErrorAccumulator, mse, sqnr, top1_agreement


def test_sqnr_and_mse() -> None:
    x = np.array([3.0, 4.0])
    assert sqnr(x, x) == math.inf
    # the noise is a tenth of the signal in norm: 20 dB
    assert math.isclose(sqnr(x, x + np.array([0.3, 0.4])), 20.0)
    assert mse(x, x + 1.0) == 1.0


def test_accumulator_equals_one_shot() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(100), rng.standard_normal(100)
    acc = ErrorAccumulator()
    acc.add(a[:30], b[:30])
    acc.add(a[30:], b[30:])
    assert math.isclose(acc.sqnr_db, sqnr(a, b)) and math.isclose(acc.mse, mse(a, b))


def test_top1_agreement() -> None:
    ref = np.array([[0, 1, 0], [1, 0, 0]])
    assert top1_agreement(ref, np.array([[0, 2, 1], [0, 1, 0]])) == 0.5


def test_ratio_spread_says_when_a_speed_ratio_is_unreliable() -> None:
    """Interleaved runs on a quiet machine agree; on a busy one the per-run ratios scatter and
    the figure is flagged (the main job once printed 0.81x and 1.32x for the same build)."""
    from quantune_iree.algo.metrics import ratio_spread

    quiet = ratio_spread([4.0, 4.1, 3.9, 4.0, 4.2, 4.0], [3.0, 3.0, 3.1, 2.9, 3.0, 3.1])
    assert 1.3 < quiet.median < 1.36 and quiet.reliable
    assert quiet.describe().startswith("1.3") and "UNRELIABLE" not in quiet.describe()
    busy = ratio_spread([4.0, 6.5, 3.9, 4.4, 7.0, 4.0], [5.0, 3.0, 4.8, 3.1, 4.9, 3.0])
    assert not busy.reliable and "UNRELIABLE" in busy.describe()
    assert not ratio_spread([4.0, 4.0], [3.0, 3.0]).reliable  # too few runs to say


def test_cosine_similarities_per_sample() -> None:
    from quantune_iree.algo.metrics import cosine_similarities

    ref = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    got = np.array([[2.0, 0.0], [1.0, -1.0], [0.0, 0.0], [1.0, 0.0]])
    assert cosine_similarities(ref, got) == pytest.approx((1.0, 0.0, 1.0, 0.0))

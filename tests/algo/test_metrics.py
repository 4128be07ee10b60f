"""Error metrics: definitions from REFERENCE §1."""

from __future__ import annotations

import math

import numpy as np
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

"""Quantization arithmetic: weight scales, activation parameters, calibration methods."""

from __future__ import annotations

import numpy as np
import pytest
from quantune_iree.algo.observers import HistogramObserver
from quantune_iree.algo.quantization import (
    activation_params,
    activation_range,
    choose_range,
    dequantize_weight,
    quantize_activation,
    quantize_weight,
    range_error,
    weight_scales,
)
from quantune_iree.errors import QuantuneError
from quantune_iree.model.plan import CALIBRATION_METHODS, ActivationQuant


def _stats(values: np.ndarray):  # noqa: ANN202
    obs = HistogramObserver()
    obs.observe(values.astype(np.float32))
    return obs.finalize()


def test_per_channel_weight_scales_and_round_trip() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)) * np.array([0.1, 1, 10, 0])[:, None, None, None]
    w = w.astype(np.float32)
    s = weight_scales(w, (0,))
    np.testing.assert_allclose(s[:3], np.abs(w[:3]).reshape(3, -1).max(1) / 127, rtol=1e-6)
    assert s[3] == 1.0  # an all-zero channel keeps a usable scale
    q = quantize_weight(w, s, (0,))
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    assert np.abs(q[:3]).reshape(3, -1).max(1).tolist() == [127, 127, 127]
    err = np.abs(dequantize_weight(q, s, (0,)) - w)
    assert np.all(err <= s[:, None, None, None] / 2 + 1e-7)
    assert weight_scales(w, (0,), per_channel=False).shape == (1,)


def test_weight_scales_for_grouped_channel_order() -> None:
    """Channels along two dims (group, filter), listed in output order, possibly swapped."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 2, 4, 3, 3)).astype(np.float32)  # F x G x C x kh x kw
    s = weight_scales(w, (1, 0))  # output order: (g, f)
    want = np.abs(w).transpose(1, 0, 2, 3, 4).reshape(6, -1).max(1) / 127
    np.testing.assert_allclose(s, want, rtol=1e-6)
    q = quantize_weight(w, s, (1, 0))
    assert np.abs(q).transpose(1, 0, 2, 3, 4).reshape(6, -1).max(1).tolist() == [127] * 6


def test_activation_params() -> None:
    a = activation_params(0.0, 6.0, symmetric=False)
    assert a.zero_point == -128 and a.scale == pytest.approx(6 / 255)
    b = activation_params(-2.0, 6.0, symmetric=True)
    assert b.zero_point == 0 and b.scale == pytest.approx(6 / 127)
    c = activation_params(1.0, 3.0, symmetric=False)  # widened to include 0
    assert quantize_activation(np.zeros(1, np.float32), c)[0] == c.zero_point
    x = np.array([-100.0, 0.0, 100.0], np.float32)
    assert quantize_activation(x, ActivationQuant(0.1, 0)).tolist() == [-128, 0, 127]


def test_calibration_methods_clip_outliers() -> None:
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.standard_normal(200_000), [80.0, -60.0]])
    stats = _stats(values)
    lo, hi = activation_range(stats, "minmax")
    assert (lo, hi) == pytest.approx((-60.0, 80.0))
    for method in ("percentile", "entropy"):
        lo, hi = activation_range(stats, method)
        assert -60.0 <= lo < 0 < hi <= 80.0, method
        assert max(-lo, hi) < 20.0, method  # the two outliers are clipped away
    # MSE weighs the outliers' large clipping error against 200k values' rounding noise:
    # t minimises 2e5 (t/127)²/12 + (80 - t)² + (60 - t)², near t = 46.
    lo, hi = activation_range(stats, "mse")
    assert 40.0 < hi < 52.0 and lo == max(-60.0, -hi)
    assert set(CALIBRATION_METHODS) == {"minmax", "percentile", "entropy", "mse", "auto"}
    with pytest.raises(QuantuneError, match="unknown calibration method 'kl'"):
        activation_range(stats, "kl")


def test_calibration_methods_keep_bounded_data() -> None:
    stats = _stats(np.random.default_rng(3).uniform(0, 6, 100_000))
    for method in CALIBRATION_METHODS:
        lo, hi = activation_range(stats, method)
        assert lo >= 0.0 and 4.5 < hi <= 6.0, (method, hi)


def test_auto_picks_per_tensor_the_range_of_least_error() -> None:
    rng = np.random.default_rng(5)
    heavy = np.abs(rng.laplace(size=200_000))  # ReLU-like, an exponential tail
    flat = rng.uniform(-1.0, 3.0, 200_000)
    for values in (heavy, flat):
        stats = _stats(values)
        lo, hi, method = choose_range(stats, "auto", 99.99)
        assert method in ("minmax", "percentile", "mse")
        chosen = range_error(stats, lo, hi)
        for other in ("minmax", "percentile"):
            assert chosen <= range_error(stats, *activation_range(stats, other)) + 1e-15
    # The outliers are clipped on the heavy tensor; the uniform one keeps (nearly) its range.
    assert choose_range(_stats(heavy), "auto")[1] < 0.9 * heavy.max()
    assert choose_range(_stats(flat), "auto")[1] > 2.9
    # Non-auto methods pass through and name themselves.
    assert choose_range(_stats(flat), "minmax")[2] == "minmax"


def test_range_error_counts_rounding_and_clipping() -> None:
    stats = _stats(np.linspace(0.0, 2.55, 100_001))
    step = 2.55 / 255
    np.testing.assert_allclose(range_error(stats, 0.0, 2.55), step * step / 12, rtol=0.02)
    assert range_error(stats, 0.0, 1.0) > range_error(stats, 0.0, 2.55)  # clipping costs more

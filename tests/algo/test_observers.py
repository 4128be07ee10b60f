"""Observers: exact histograms while the range grows, and the statistics they report."""

from __future__ import annotations

import numpy as np
import pytest
from quantune_iree.algo.observers import HistogramObserver


def test_growing_histogram_equals_one_shot_histogram() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal(1000) * s for s in (0.1, 1.0, 7.0, 0.5, 30.0)]
    obs = HistogramObserver(bins=256)
    for b in batches:
        obs.observe(b.astype(np.float32))
    stats = obs.finalize()
    everything = np.concatenate(batches).astype(np.float32)
    want, _ = np.histogram(everything, bins=256, range=(-stats.hist_range, stats.hist_range))
    np.testing.assert_array_equal(stats.histogram, want)
    assert stats.hist_range >= np.abs(everything).max()
    assert stats.count == everything.size and stats.histogram.sum() == everything.size
    assert stats.min == pytest.approx(everything.min()) and stats.max == pytest.approx(
        everything.max()
    )
    assert stats.mean == pytest.approx(everything.astype(np.float64).mean(), rel=1e-9)
    assert stats.std == pytest.approx(everything.astype(np.float64).std(), rel=1e-6)


def test_observer_rejects_nan_and_empty() -> None:
    obs = HistogramObserver(bins=16)
    with pytest.raises(ValueError, match="no data"):
        obs.finalize()
    with pytest.raises(ValueError, match="NaN or Inf"):
        obs.observe(np.array([1.0, np.nan], np.float32))


def test_all_zero_tensor() -> None:
    obs = HistogramObserver(bins=16)
    obs.observe(np.zeros(10, np.float32))
    stats = obs.finalize()
    assert stats.min == stats.max == 0.0 and stats.histogram.sum() == 10

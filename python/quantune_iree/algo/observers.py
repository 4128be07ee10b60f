"""Streaming statistics of activation tensors: observe(batch) any number of times, then finalize().

The histogram covers a symmetric range [-R, R] with an even number of bins. When a batch falls
outside it, R doubles (as often as needed) and pairs of bins merge into the middle half, which is
exact: no sample is ever re-binned approximately and nothing but the counts is kept.
"""

from __future__ import annotations

import numpy as np

from ..model.results import TensorStats

DEFAULT_BINS = 2048


class HistogramObserver:
    """Min/max, moments and a growing symmetric histogram of every value it observes."""

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if bins < 4 or bins % 4:
            raise ValueError("bins must be a positive multiple of 4")
        self._bins = bins
        self._hist = np.zeros(bins, dtype=np.int64)
        self._range = 0.0
        self._count = 0
        self._min = np.inf
        self._max = -np.inf
        self._sum = 0.0
        self._sumsq = 0.0

    def _grow_to(self, absmax: float) -> None:
        if self._range == 0.0:
            # First data: pick a power of two so later doublings stay on nice edges.
            self._range = float(2.0 ** np.ceil(np.log2(max(absmax, 1e-30))))
            return
        while self._range < absmax:
            merged = self._hist.reshape(-1, 2).sum(axis=1)
            self._hist = np.zeros_like(self._hist)
            quarter = self._bins // 4
            self._hist[quarter : quarter + merged.size] = merged
            self._range *= 2.0

    def observe(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.size == 0:
            return
        flat = x.reshape(-1).astype(np.float64, copy=False)
        lo, hi = float(flat.min()), float(flat.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("tensor holds NaN or Inf")
        self._grow_to(max(abs(lo), abs(hi)))
        counts, _ = np.histogram(flat, bins=self._bins, range=(-self._range, self._range))
        self._hist += counts
        self._count += flat.size
        self._min = min(self._min, lo)
        self._max = max(self._max, hi)
        self._sum += float(flat.sum())
        self._sumsq += float(np.dot(flat, flat))

    def finalize(self) -> TensorStats:
        if self._count == 0:
            raise ValueError("no data observed")
        mean = self._sum / self._count
        var = max(self._sumsq / self._count - mean * mean, 0.0)
        hist = self._hist.copy()
        hist.setflags(write=False)
        return TensorStats(
            count=self._count,
            min=self._min,
            max=self._max,
            mean=mean,
            std=float(np.sqrt(var)),
            hist_range=self._range,
            histogram=hist,
        )

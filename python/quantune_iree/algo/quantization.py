"""Quantization arithmetic shared by the stages: weight scales, activation scale/zero point from
calibration statistics, and numpy versions of what the compiled integer code computes.

These are pure functions. The C++ pass quantizes weights with exactly `quantize_weight`'s formula
(float32 divide, round half to even, clamp to [-127, 127]); tests hold the two to bit equality.
"""

from __future__ import annotations

import numpy as np

from ..errors import QuantuneError
from ..model.plan import CALIBRATION_METHODS, ActivationQuant
from ..model.results import TensorStats

QMIN, QMAX = -128, 127  # activations
WMAX = 127  # weights: symmetric, narrow range


def _channel_last(weight: np.ndarray, channel_dims: tuple[int, ...]) -> np.ndarray:
    """(channels, rest) view: channel dims first, row-major, the rest flattened."""
    rest = [d for d in range(weight.ndim) if d not in channel_dims]
    moved = weight.transpose(list(channel_dims) + rest)
    channels = int(np.prod([weight.shape[d] for d in channel_dims]))
    return moved.reshape(channels, -1)


def weight_scales(
    weight: np.ndarray, channel_dims: tuple[int, ...], per_channel: bool = True
) -> np.ndarray:
    """Symmetric scales, max|w| / 127, one per output channel (or one for the tensor)."""
    w = np.asarray(weight, np.float32)
    absmax = (
        np.abs(_channel_last(w, channel_dims)).max(axis=1)
        if per_channel
        else np.array([np.abs(w).max()], np.float32)
    )
    scales = (absmax / np.float32(WMAX)).astype(np.float32)
    return np.where(scales > 0, scales, np.float32(1.0)).astype(np.float32)


def _scales_like(
    shape: tuple[int, ...], scales: np.ndarray, channel_dims: tuple[int, ...]
) -> np.ndarray:
    """Per-channel scales (row-major over `channel_dims` in that order, or one for all) laid out
    to broadcast against a weight of `shape`."""
    bshape = [1] * len(shape)
    for d in channel_dims:
        bshape[d] = shape[d]
    s = np.broadcast_to(np.asarray(scales, np.float32), (int(np.prod(bshape)),))
    order = np.argsort(channel_dims)
    return s.reshape([shape[d] for d in channel_dims]).transpose(order).reshape(bshape)


def quantize_weight(
    weight: np.ndarray,
    scales: np.ndarray,
    channel_dims: tuple[int, ...],
    offsets: np.ndarray | None = None,
) -> np.ndarray:
    """int8 weights as the compiler pass stores them: round to nearest, plus the data-aware
    rounding's `offsets` (same layout as `weight`) when given, clamped to ±127."""
    w = np.asarray(weight, np.float32)
    s = _scales_like(w.shape, scales, channel_dims)
    q = np.rint(w / s)
    if offsets is not None:
        q = q + np.asarray(offsets, np.float32).reshape(w.shape)
    return np.clip(q, -WMAX, WMAX).astype(np.int8)


def dequantize_weight(
    q: np.ndarray, scales: np.ndarray, channel_dims: tuple[int, ...]
) -> np.ndarray:
    return q.astype(np.float32) * _scales_like(q.shape, scales, channel_dims)


def quantize_activation(x: np.ndarray, params: ActivationQuant) -> np.ndarray:
    xq = np.rint(np.asarray(x, np.float32) / np.float32(params.scale)) + np.float32(
        params.zero_point
    )
    return np.clip(xq, QMIN, QMAX).astype(np.int8)


def activation_params(lo: float, hi: float, symmetric: bool) -> ActivationQuant:
    """Scale and zero point covering [lo, hi] (widened to include 0, so 0 is exact)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if symmetric:
        bound = max(-lo, hi)
        scale = bound / 127.0 if bound > 0 else 1.0
        return ActivationQuant(float(np.float32(scale)), 0)
    if hi - lo <= 0:
        return ActivationQuant(1.0, 0)
    scale = float(np.float32((hi - lo) / (QMAX - QMIN)))
    zero_point = int(np.clip(round(QMIN - lo / scale), QMIN, QMAX))
    return ActivationQuant(scale, zero_point)


def _abs_histogram(stats: TensorStats) -> tuple[np.ndarray, float]:
    """Histogram of |x| on [0, hist_range], and its bin width."""
    h = stats.histogram.astype(np.float64)
    half = h.size // 2
    return h[half:] + h[:half][::-1], stats.hist_range / half


def _percentile_threshold(stats: TensorStats, percentile: float) -> float:
    hist, width = _abs_histogram(stats)
    cdf = np.cumsum(hist) / max(hist.sum(), 1.0)
    idx = int(np.searchsorted(cdf, percentile / 100.0))
    return min((idx + 1) * width, stats.absmax)


def _entropy_threshold(stats: TensorStats, levels: int = 128) -> float:
    """TensorRT-style KL divergence search over thresholds on the |x| histogram."""
    hist, width = _abs_histogram(stats)
    nz = np.nonzero(hist)[0]
    if nz.size == 0:
        return 0.0
    last = int(nz[-1]) + 1
    hist = hist[:last]
    if last <= levels:
        return last * width
    best, best_kl = last, np.inf
    for i in range(levels, last + 1, max(1, (last - levels) // 256)):
        ref = hist[:i].copy()
        ref[i - 1] += hist[i:].sum()
        p = ref / ref.sum()
        # Quantize the first i bins into `levels` buckets, spread back over non-empty bins.
        edges = np.linspace(0, i, levels + 1).astype(int)
        q = np.zeros(i)
        src = hist[:i]
        for b in range(levels):
            lo, hi = edges[b], max(edges[b + 1], edges[b] + 1)
            chunk = src[lo:hi]
            nonzero = chunk > 0
            if nonzero.any():
                q[lo:hi][nonzero] = chunk.sum() / nonzero.sum()
        q = q / max(q.sum(), 1e-30)
        mask = p > 0
        qm = np.where(q[mask] > 0, q[mask], 1e-12)
        kl = float(np.sum(p[mask] * np.log(p[mask] / qm)))
        if kl < best_kl:
            best, best_kl = i, kl
    return best * width


def _mse_threshold(stats: TensorStats, steps: int = 256) -> float:
    """The symmetric threshold minimising the expected int8 quantization MSE: values inside
    [-t, t] cost the rounding noise step²/12, values outside cost their clipping error."""
    hist, width = _abs_histogram(stats)
    centers = (np.arange(hist.size) + 0.5) * width
    absmax = stats.absmax
    if absmax == 0:
        return 0.0
    best, best_err = absmax, np.inf
    for t in np.linspace(absmax / steps, absmax, steps):
        step = t / 127.0
        clipped = centers > t
        err = float(
            np.sum(hist[~clipped]) * step * step / 12.0
            + np.sum(hist[clipped] * (centers[clipped] - t) ** 2)
        )
        if err < best_err:
            best, best_err = float(t), err
    return best


def range_error(stats: TensorStats, lo: float, hi: float, symmetric: bool = False) -> float:
    """Expected squared error per value of quantizing the calibrated values with the int8 grid
    that covers [lo, hi]: the rounding noise step²/12 inside it, the clipping error outside."""
    p = activation_params(lo, hi, symmetric)
    qlo, qhi = (QMIN - p.zero_point) * p.scale, (QMAX - p.zero_point) * p.scale
    h = stats.histogram.astype(np.float64)
    edges = stats.bin_edges()
    centers = (edges[:-1] + edges[1:]) / 2
    clipped = np.clip(centers, qlo, qhi)
    inside = (centers >= qlo) & (centers <= qhi)
    err = h[inside].sum() * p.scale * p.scale / 12.0 + float(np.sum(h * (centers - clipped) ** 2))
    return err / max(h.sum(), 1.0)


def _mse_range(stats: TensorStats, symmetric: bool, steps: int = 200) -> tuple[float, float]:
    """[α·min, α·max] with the α in (0, 1] of least range_error."""
    lo, hi = min(stats.min, 0.0), max(stats.max, 0.0)
    best, best_err = (lo, hi), np.inf
    for alpha in np.linspace(1.0 / steps, 1.0, steps):
        err = range_error(stats, alpha * lo, alpha * hi, symmetric)
        if err < best_err:
            best, best_err = (alpha * lo, alpha * hi), err
    return best


AUTO_CANDIDATES = ("minmax", "percentile", "mse")


def choose_range(
    stats: TensorStats, method: str, percentile: float = 99.99, symmetric: bool = False
) -> tuple[float, float, str]:
    """(lo, hi, method used). `auto` picks, for this tensor alone, the candidate of least
    expected quantization error on its histogram: minmax, percentile, or the α search that
    minimises that error (each candidate exactly as the method of that name computes it,
    except mse, which here searches the actual asymmetric/symmetric grid)."""
    if method != "auto":
        lo, hi = activation_range(stats, method, percentile)
        return lo, hi, method
    candidates = {
        "minmax": (stats.min, stats.max),
        "percentile": activation_range(stats, "percentile", percentile),
        "mse": _mse_range(stats, symmetric),
    }
    name = min(candidates, key=lambda k: range_error(stats, *candidates[k], symmetric))
    return (*candidates[name], name)


def activation_range(
    stats: TensorStats, method: str = "minmax", percentile: float = 99.99
) -> tuple[float, float]:
    """The [lo, hi] an activation is quantized to, by calibration method."""
    if method == "auto":
        lo, hi, _ = choose_range(stats, method, percentile)
        return lo, hi
    if method == "minmax":
        return stats.min, stats.max
    if method == "percentile":
        t = _percentile_threshold(stats, percentile)
    elif method == "entropy":
        t = _entropy_threshold(stats)
    elif method == "mse":
        t = _mse_threshold(stats)
    else:
        raise QuantuneError(
            f"unknown calibration method '{method}'; choose from {', '.join(CALIBRATION_METHODS)}"
        )
    return max(stats.min, -t), min(stats.max, t)

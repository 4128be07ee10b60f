"""Data-aware weight rounding (GPTQ, Frantar et al. 2022) from the FP32 pass's input statistics.

Rounding every weight to nearest minimises the weight error, not the error of the layer's
output. With H = E[x xᵀ], the second moment of the input patches a layer's weight rows are
applied to, the output error of a row is (ŵ - w) H (ŵ - w)ᵀ. GPTQ rounds the inputs of a row one
at a time and moves each rounding error onto the not yet rounded weights, through the inverse
Cholesky factor of H. The per-channel scales stay max|w| / 127; only the roundings change, so
the result is stored as a small signed offset from round-to-nearest per weight, which the
quantize pass adds (algo.quantization.quantize_weight with `offsets`).

H is accumulated in the FP32 pass (one statistic more per layer; no extra pass): for a conv over
its im2col patches (the zero padding included), for a depthwise conv per channel, for a matmul
over the rows of its input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..model.layer import ConvGeometry, Layer
from .bias_correction import onnx_weight, padded_windows
from .quantization import WMAX

# GPTQ's dampening: λ = DAMP · mean(diag H) added to the diagonal.
DAMP = 0.01


def patches(x: np.ndarray, kernel: Sequence[int], geometry: ConvGeometry) -> np.ndarray:
    """(N·positions, C, *kernel): the zero-padded input window of every output position."""
    cols = [values for _, values in padded_windows(x, kernel, geometry, np.float32)]
    stacked = np.stack(cols, axis=2)  # (N, C, taps, *out)
    n, c = x.shape[0], x.shape[1]
    moved = np.moveaxis(stacked.reshape(n, c, len(cols), -1), 3, 1)  # (N, P, C, taps)
    return moved.reshape(-1, c, *kernel)


class SecondMoments:
    """H = E[x xᵀ] of one layer's weight-row inputs, accumulated over samples: one matrix for a
    matmul or plain conv (features in the weight's [in, *kernel] order), one per group for a
    grouped or depthwise conv."""

    def __init__(self, layer: Layer) -> None:
        w = onnx_weight(layer)
        assert w is not None
        self._layer = layer
        self._kernel = w.shape[2:]
        self._group = layer.geometry.group if layer.geometry else 1
        self._sum: np.ndarray | None = None
        self._count = 0

    def add(self, x: np.ndarray) -> None:
        if self._layer.geometry is None:
            rows = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
            h = (rows.T.astype(np.float64) @ rows).reshape(1, rows.shape[1], rows.shape[1])
            n = rows.shape[0]
        else:
            p = patches(x, self._kernel, self._layer.geometry)
            g = self._group
            p = p.reshape(p.shape[0], g, -1).transpose(1, 0, 2)  # (G, P, features)
            h = np.matmul(p.transpose(0, 2, 1), p).astype(np.float64)
            n = p.shape[1]
        self._sum = h if self._sum is None else self._sum + h
        self._count += n

    def hessian(self) -> np.ndarray | None:
        """(groups, features, features), or None before any data."""
        return None if self._sum is None else self._sum / self._count


def gptq_round(w: np.ndarray, scales: np.ndarray, h: np.ndarray, damp: float = DAMP) -> np.ndarray:
    """Integer weights [rows, features] for float rows `w` with per-row `scales`, rounded by
    GPTQ against the shared second moment `h` [features, features]."""
    w = np.asarray(w, np.float64).copy()
    s = np.asarray(scales, np.float64)[:, None]
    h = np.asarray(h, np.float64).copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damp * float(np.mean(np.diag(h))) * np.eye(h.shape[0])
    try:
        hinv = np.linalg.cholesky(np.linalg.inv(h)).T  # upper
    except np.linalg.LinAlgError:
        return np.clip(np.rint(w / s), -WMAX, WMAX)
    q = np.zeros_like(w)
    for i in range(w.shape[1]):
        q[:, i] = np.clip(np.rint(w[:, i] / s[:, 0]), -WMAX, WMAX)
        err = (w[:, i] - q[:, i] * s[:, 0]) / hinv[i, i]
        w[:, i + 1 :] -= np.outer(err, hinv[i, i + 1 :])
    return q


def gptq_offsets(layer: Layer, scales: Sequence[float], h: np.ndarray) -> np.ndarray:
    """Per weight, GPTQ's integer minus round-to-nearest's, in the layer's operand layout (as
    Layer.weight), int8."""
    w = onnx_weight(layer)
    assert w is not None and layer.weight is not None
    s = np.asarray(scales, np.float32)
    out_channels = w.shape[0]
    s = np.broadcast_to(s, (out_channels,)) if s.size == 1 else s
    rows = w.reshape(out_channels, -1)
    groups = h.shape[0]
    per = out_channels // groups
    q = np.concatenate(
        [
            gptq_round(rows[g * per : (g + 1) * per], s[g * per : (g + 1) * per], h[g])
            for g in range(groups)
        ]
    )
    nearest = np.clip(np.rint(rows / s[:, None].astype(np.float32)), -WMAX, WMAX)
    delta = (q - nearest).astype(np.int8).reshape(w.shape)
    return to_operand_layout(layer, delta)


def to_operand_layout(layer: Layer, array: np.ndarray) -> np.ndarray:
    """The inverse of onnx_weight's relayout: [out, in/group, *kernel] or [out, in] back to the
    layer's operand layout."""
    assert layer.weight is not None
    if layer.op_name == "linalg.matmul":
        return np.ascontiguousarray(array.T)
    return np.ascontiguousarray(array.reshape(layer.weight.shape))

"""numpy model of the integer arithmetic quantune compiles: i8 activations and weights, exact
integer accumulation, then dequantization in float32 in the same order as the compiled code."""

from __future__ import annotations

import numpy as np


def conv2d_nchw(xp: np.ndarray, w: np.ndarray, stride: int, groups: int) -> np.ndarray:
    """Exact integer conv of an already padded NCHW input with (F, C/groups, kh, kw) weights."""
    n, c, hp, wp = xp.shape
    f, cg, kh, kw = w.shape
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    fg = f // groups
    out = np.zeros((n, f, ho, wo), np.int64)
    for g in range(groups):
        xs = xp[:, g * cg : (g + 1) * cg].astype(np.int64)
        ws = w[g * fg : (g + 1) * fg].astype(np.int64)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
                out[:, g * fg : (g + 1) * fg] += np.einsum("nchw,fc->nfhw", patch, ws[:, :, i, j])
    return out


def dequantize(
    acc: np.ndarray, scale: np.ndarray, channel_axis: int, bias: np.ndarray | None
) -> np.ndarray:
    """float32(acc + bias_i32[c]) * scale[c], with bias_i32 = rint(bias / scale) in float32:
    the bias joins the integer accumulator, so there is a single float rounding."""
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    s = np.asarray(scale, np.float32)
    if bias is not None:
        acc = acc + np.rint(np.asarray(bias, np.float32) / s).astype(np.int64).reshape(shape)
    return acc.astype(np.float32) * s.reshape(shape)

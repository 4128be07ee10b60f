"""GPTQ rounding: lower output error than round-to-nearest on the statistics it was given."""

from __future__ import annotations

import numpy as np
from quantune_iree.algo.quantization import quantize_weight, weight_scales
from quantune_iree.algo.rounding import (
    SecondMoments,
    gptq_offsets,
    gptq_round,
    patches,
    to_operand_layout,
)
from quantune_iree.model.layer import ConvGeometry, Layer


def _correlated(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) * 0.5 + np.eye(d)
    return rng.standard_normal((n, d)) @ mix + 0.3


def test_gptq_lowers_the_output_error_of_nearest() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 24))
    x = _correlated(4000, 24, 1)
    h = x.T @ x / len(x)
    s = np.abs(w).max(axis=1) / 127
    nearest = np.clip(np.rint(w / s[:, None]), -127, 127)
    q = gptq_round(w, s, h)
    assert q.min() >= -127 and q.max() <= 127 and np.array_equal(q, np.rint(q))

    def out_err(qi: np.ndarray) -> float:
        return float(np.mean((x @ (qi * s[:, None] - w).T) ** 2))

    assert out_err(q) < 0.7 * out_err(nearest)
    # Held-out data from the same distribution: the gain is no overfit.
    x2 = _correlated(4000, 24, 1)[::-1] * 1.0
    assert np.mean((x2 @ (q * s[:, None] - w).T) ** 2) < np.mean(
        (x2 @ (nearest * s[:, None] - w).T) ** 2
    )


def test_patches_are_the_padded_windows() -> None:
    x = np.arange(2 * 2 * 4 * 5, dtype=np.float32).reshape(2, 2, 4, 5)
    g = ConvGeometry((2, 2), (1, 0, 0, 1), (1, 1), 1)
    p = patches(x, (3, 3), g)
    # Output 2 x 2 per image; position (0, 1) of image 1 reads padded rows 0..2, cols 2..4.
    assert p.shape == (2 * 2 * 2, 2, 3, 3)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 0), (0, 1)))
    np.testing.assert_array_equal(p[4 + 1], xp[1, :, 0:3, 2:5])


def _conv_layer(w: np.ndarray, op: str, g: ConvGeometry, shape) -> Layer:
    return Layer(0, "n", "Conv", "conv", op, "fp32", shape, w.shape, (), True, (0,), (1,), w, g)


def test_offsets_turn_nearest_into_gptq_in_the_operand_layout() -> None:
    """Depthwise: one second moment per channel; the offsets, added to nearest by
    quantize_weight in the op's own layout, give GPTQ's integers."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((6, 3, 3)).astype(np.float32)  # linalg depthwise C x kh x kw
    g = ConvGeometry((1, 1), (1, 1, 1, 1), (1, 1), 6)
    layer = _conv_layer(w, "linalg.depthwise_conv_2d_nchw_chw", g, (1, 6, 8, 8))
    mom = SecondMoments(layer)
    for seed in range(3):
        mom.add(_correlated(6 * 64, 1, seed).reshape(1, 6, 8, 8).astype(np.float32))
    h = mom.hessian()
    assert h is not None and h.shape == (6, 9, 9)
    scales = weight_scales(w, (0,))
    offsets = gptq_offsets(layer, scales, h)
    assert offsets.dtype == np.int8 and offsets.shape == w.shape
    q = quantize_weight(w, scales, (0,), offsets).reshape(6, 9)
    for c in range(6):
        np.testing.assert_array_equal(
            q[c], gptq_round(w[c].reshape(1, 9), scales[c : c + 1], h[c])[0]
        )


def test_matmul_offsets_come_back_transposed() -> None:
    w_kn = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer = Layer(
        0,
        "n",
        "Gemm",
        "matmul",
        "linalg.matmul",
        "fp32",
        (1, 2),
        (2, 3),
        (1, 3),
        True,
        (1,),
        (1,),
        w_kn,
    )
    np.testing.assert_array_equal(to_operand_layout(layer, w_kn.T), w_kn)

"""Bias correction's arithmetic: window means through a weight equal the conv's mean output."""

from __future__ import annotations

import numpy as np
import pytest
from quantune_iree.algo.bias_correction import (
    MeansAccumulator,
    analytic_correction,
    empirical_correction,
    input_means,
    output_means,
    propagate,
    supported,
    window_means,
)
from quantune_iree.algo.quantization import dequantize_weight, quantize_weight, weight_scales
from quantune_iree.model.layer import ConvGeometry, Layer


def _float_conv(x: np.ndarray, w: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """Float conv via the exact integer reference on scaled values (pads applied here)."""
    xp = np.pad(x, ((0, 0), (0, 0), (g.pads[0], g.pads[2]), (g.pads[1], g.pads[3])))
    n, c, hp, wp = xp.shape
    f, cg, kh, kw = w.shape
    s = g.strides[0]
    ho, wo = (hp - kh) // s + 1, (wp - kw) // s + 1
    out = np.zeros((n, f, ho, wo))
    fg = f // g.group
    for gi in range(g.group):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, gi * cg : (gi + 1) * cg, i : i + s * ho : s, j : j + s * wo : s]
                out[:, gi * fg : (gi + 1) * fg] += np.einsum(
                    "nchw,fc->nfhw", patch, w[gi * fg : (gi + 1) * fg, :, i, j]
                )
    return out


def _layer(w_operand: np.ndarray, op: str, geometry: ConvGeometry | None, in_shape) -> Layer:
    return Layer(
        id=0,
        node="n",
        onnx_op="Conv",
        kind="conv",
        op_name=op,
        precision="fp32",
        input_shape=in_shape,
        weight_shape=w_operand.shape,
        output_shape=(),
        weight_is_constant=True,
        weight_channel_dims=(0,) if op != "linalg.matmul" else (1,),
        output_channel_dims=(1,),
        weight=w_operand.astype(np.float32),
        geometry=geometry,
    )


CASES = [
    # geometry, weight shape (ONNX), linalg op
    (ConvGeometry((1, 1), (1, 1, 1, 1), (1, 1), 1), (5, 3, 3, 3), "linalg.conv_2d_nchw_fchw"),
    (ConvGeometry((2, 2), (0, 1, 2, 0), (1, 1), 1), (4, 3, 3, 3), "linalg.conv_2d_nchw_fchw"),
    (
        ConvGeometry((2, 2), (1, 1, 1, 1), (1, 1), 3),
        (3, 1, 3, 3),
        "linalg.depthwise_conv_2d_nchw_chw",
    ),
]


@pytest.mark.parametrize("geometry,shape,op", CASES)
def test_window_means_through_the_weight_give_the_mean_output(geometry, shape, op) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8)) + 0.5
    w = rng.standard_normal(shape)
    operand = w[:, 0] if op.startswith("linalg.depthwise") else w
    layer = _layer(operand, op, geometry, x.shape)
    assert supported(layer)
    m = input_means(layer, x)
    want = _float_conv(x, w, geometry).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(propagate(w, m, geometry.group), want, rtol=1e-6, atol=1e-9)
    assert window_means(x, shape[2:], geometry).shape == (3, 3, 3)


def test_matmul_means_and_the_integer_reference_agree() -> None:
    """A matmul's input means are the mean row; the analytic correction cancels exactly the
    mean error of the quantized weights on that input."""
    rng = np.random.default_rng(1)
    w_kn = rng.standard_normal((6, 4)).astype(np.float32)  # the op's K x N operand
    x = rng.standard_normal((5, 6)) + 1.0
    layer = _layer(w_kn, "linalg.matmul", None, x.shape)
    scales = weight_scales(w_kn, (1,))
    wq = dequantize_weight(quantize_weight(w_kn, scales, (1,)), scales, (1,))
    mean_error = (x @ wq - x @ w_kn).mean(axis=0)
    corr = analytic_correction(layer, scales, input_means(layer, x))
    np.testing.assert_allclose(corr, -mean_error, rtol=1e-5, atol=1e-7)


def test_empirical_correction_counts_only_the_layers_own_error() -> None:
    """An input mean error that reaches the layer is not the layer's: with the layer itself
    exact, the correction is zero; a layer that adds a shift gets exactly its negative."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 6)).astype(np.float32)
    layer = _layer(w.T.copy(), "linalg.matmul", None, (1, 6))
    m_fp32 = rng.standard_normal(6)
    m_int8 = m_fp32 + rng.standard_normal(6) * 0.1  # upstream error
    y_fp32 = w @ m_fp32
    y_int8 = w @ m_int8  # the layer adds nothing
    np.testing.assert_allclose(
        empirical_correction(layer, m_fp32, y_fp32, m_int8, y_int8), 0, atol=1e-9
    )
    shift = np.array([0.5, -0.2, 0.0, 0.1])
    np.testing.assert_allclose(
        empirical_correction(layer, m_fp32, y_fp32, m_int8, y_int8 + shift), -shift, atol=1e-9
    )


def test_means_accumulator_averages_samples() -> None:
    rng = np.random.default_rng(3)
    g = ConvGeometry((1, 1), (0, 0, 0, 0), (1, 1), 1)
    layer = _layer(rng.standard_normal((2, 3, 1, 1)), "linalg.conv_2d_nchw_fchw", g, (1, 3, 4, 4))
    acc = MeansAccumulator(layer)
    assert acc.means() == (None, None)
    xs = [rng.standard_normal((1, 3, 4, 4)) for _ in range(3)]
    ys = [rng.standard_normal((1, 2, 4, 4)) for _ in range(3)]
    for x, y in zip(xs, ys, strict=True):
        acc.add(x, y)
    m_in, m_out = acc.means()
    np.testing.assert_allclose(m_in[:, 0, 0], np.concatenate(xs).mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(m_out, output_means(np.concatenate(ys)))


def test_unknown_layouts_are_not_corrected() -> None:
    w = np.ones((2, 3, 3, 3), np.float32)
    assert not supported(_layer(w, "linalg.conv_2d_nhwc_hwcf", None, (1, 3, 5, 5)))
    assert not supported(_layer(w, "linalg.conv_2d_nchw_fchw", None, (1, 3, 5, 5)))

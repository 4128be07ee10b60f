"""Bias correction: the per-output-channel mean error an int8 layer adds, folded back into its
int32 bias by the quantize pass.

Both estimates come from the two passes already run, through the linearity of a conv or matmul:
the mean of its output over the positions of one output channel is the weight applied to the
*window means* of its input (the mean, over all output positions, of the input value each kernel
tap reads, padding zeros included), plus the bias.

- analytic (FP32 pass only): the weight's rounding error applied to the FP32 input's window
  means, -(W_q - W) * M(x). What the weights add; the activation's own rounding is taken as
  unbiased.
- empirical (FP32 and INT8 pass): the mean error of the layer's output in the INT8 pass less what
  its input's mean error explains through the float layer, -[(E y_q - E y) - W * (M(x_q) - M(x))].
  It also catches clipped activation ranges. One shot: every layer is corrected from the same
  INT8 pass, each for the error it adds itself, so upstream corrections are not counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..model.layer import ConvGeometry, Layer
from .quantization import dequantize_weight, quantize_weight


def onnx_weight(layer: Layer, weight: np.ndarray | None = None) -> np.ndarray | None:
    """The layer's float weight (or `weight`, in the same layout) as [out, in/group, *kernel]
    (ONNX Conv) or [out, in] (a matmul); None for layouts this module does not know."""
    w = layer.weight if weight is None else weight
    if w is None:
        return None
    if layer.op_name == "linalg.conv_2d_nchw_fchw":
        return w
    if layer.op_name == "linalg.depthwise_conv_2d_nchw_chw":
        return w[:, None]
    if layer.op_name == "linalg.conv_2d_ngchw_gfchw":
        return w.reshape((-1, *w.shape[2:]))
    if layer.op_name == "linalg.matmul" and layer.weight_channel_dims == (1,) and w.ndim == 2:
        return w.T
    return None


def supported(layer: Layer) -> bool:
    """Whether the layer's window and weight layout are known, so it can be corrected."""
    w = onnx_weight(layer)
    if w is None:
        return False
    return w.ndim == 2 or (layer.geometry is not None and len(layer.input_shape) == w.ndim)


def padded_windows(
    x: np.ndarray, kernel: Sequence[int], geometry: ConvGeometry, dtype: type = np.float64
) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """(kernel tap, (N, C, *out) input values that tap reads at every output position), over
    the zero-padded input, for each tap of the window."""
    rank = len(kernel)
    pads = [(0, 0), (0, 0)] + [(geometry.pads[d], geometry.pads[d + rank]) for d in range(rank)]
    xp = np.pad(np.asarray(x, dtype), pads)
    out = [
        (xp.shape[2 + d] - geometry.dilations[d] * (kernel[d] - 1) - 1) // geometry.strides[d] + 1
        for d in range(rank)
    ]
    for tap in np.ndindex(*kernel):
        window = tuple(
            slice(
                tap[d] * geometry.dilations[d],
                tap[d] * geometry.dilations[d] + geometry.strides[d] * (out[d] - 1) + 1,
                geometry.strides[d],
            )
            for d in range(rank)
        )
        yield tap, xp[(slice(None), slice(None), *window)]


def window_means(x: np.ndarray, kernel: Sequence[int], geometry: ConvGeometry) -> np.ndarray:
    """(C, *kernel): for each input channel and kernel tap, the mean over the batch and all
    output positions of the (zero-padded) input value that tap reads."""
    means = np.zeros((x.shape[1], *kernel))
    for tap, values in padded_windows(x, kernel, geometry):
        means[(slice(None), *tap)] = values.mean(axis=(0, *range(2, values.ndim)))
    return means


def input_means(layer: Layer, x: np.ndarray) -> np.ndarray:
    """What the correction needs of one input tap: window means (a conv) or the mean input row
    (a matmul)."""
    w = onnx_weight(layer)
    assert w is not None
    if w.ndim == 2:
        return np.asarray(x, np.float64).reshape(-1, x.shape[-1]).mean(axis=0)
    assert layer.geometry is not None
    return window_means(x, w.shape[2:], layer.geometry)


def output_means(x: np.ndarray) -> np.ndarray:
    """Per-output-channel mean of an output tap (channels on axis 1, as ONNX lays them)."""
    x = np.asarray(x, np.float64)
    return x.mean(axis=tuple(d for d in range(x.ndim) if d != (1 if x.ndim > 1 else 0)))


def propagate(w: np.ndarray, means: np.ndarray, group: int = 1) -> np.ndarray:
    """(out,): the mean output of the bias-free layer with weight `w` (onnx_weight layout) over
    an input with these `input_means`."""
    w = np.asarray(w, np.float64)
    if w.ndim == 2:
        return w @ means
    out, per_group = w.shape[0], w.shape[1]
    wg = w.reshape(group, out // group, per_group, -1)
    mg = means.reshape(group, per_group, -1)
    return np.einsum("gock,gck->go", wg, mg).reshape(out)


def weight_error(
    layer: Layer, scales: Sequence[float], offsets: np.ndarray | None = None
) -> np.ndarray:
    """W_q - W in onnx_weight layout, with the plan's per-channel `scales` and rounding
    `offsets`."""
    s = np.asarray(scales, np.float32)
    assert layer.weight is not None
    q = quantize_weight(layer.weight, s, layer.weight_channel_dims, offsets)
    err = dequantize_weight(q, s, layer.weight_channel_dims) - layer.weight
    out = onnx_weight(layer, err)
    assert out is not None
    return out


def analytic_correction(
    layer: Layer,
    scales: Sequence[float],
    fp32_input_means: np.ndarray,
    offsets: np.ndarray | None = None,
) -> np.ndarray:
    """-(W_q - W) * M(x): cancels the mean of what the weights' rounding adds."""
    group = layer.geometry.group if layer.geometry else 1
    return -propagate(weight_error(layer, scales, offsets), fp32_input_means, group)


def empirical_correction(
    layer: Layer,
    fp32_input_means: np.ndarray,
    fp32_output_means: np.ndarray,
    int8_input_means: np.ndarray,
    int8_output_means: np.ndarray,
) -> np.ndarray:
    """-[(E y_q - E y) - W * (M(x_q) - M(x))]: the layer's own mean output error in the INT8
    pass, apart from what reached it through its input."""
    w = onnx_weight(layer)
    assert w is not None
    group = layer.geometry.group if layer.geometry else 1
    received = propagate(w, int8_input_means - fp32_input_means, group)
    return -((int8_output_means - fp32_output_means) - received)


class MeansAccumulator:
    """One layer's input window means and output channel means, averaged over samples."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self._count = 0
        self._input: np.ndarray | None = None
        self._output: np.ndarray | None = None

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        m_in, m_out = input_means(self.layer, x), output_means(y)
        self._input = m_in if self._input is None else self._input + m_in
        self._output = m_out if self._output is None else self._output + m_out
        self._count += 1

    def means(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self._input is None or self._output is None:
            return None, None
        return self._input / self._count, self._output / self._count


def means_accumulators(layers: Sequence[Layer]) -> dict[int, MeansAccumulator]:
    """An accumulator for each layer that can be corrected."""
    return {layer.id: MeansAccumulator(layer) for layer in layers if supported(layer)}

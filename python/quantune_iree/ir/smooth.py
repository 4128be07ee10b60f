"""Input smoothing on the ONNX graph, before import (SmoothQuant, Xiao et al., 2023): a layer
computing x · W over input channels k (a 1x1 conv, a Gemm, a MatMul by a constant weight)
computes the same with x_k / s_k and s_k · W_k, for any s_k > 0. A per-tensor int8 input then
spends its grid on the channels as they are after dividing: channels with outliers (a
transformer's LayerNorm and GELU outputs, a CNN's linear bottleneck) shrink and the weight,
quantized per output channel, takes the difference. The division is a Mul inserted before the
layer, which IREE fuses into the layer's input quantization (or, for an FP32 layer, into the
producer); the function is unchanged.

The scales follow SmoothQuant: s_k = max|x_k|^α / max_n |W_kn|^(1-α), normalized to geometric
mean 1. Smoothing takes away the headroom a channel had under the tensor's range: a channel
whose calibration maximum says little about new inputs (few samples, as after a global pool)
is clipped on them. So `auto` chooses α per layer, none included, by the layer's simulated int8
error *cross-validated* over the probe's samples: scales and activation range from half of the
calibration samples, error on input rows of the other half, and the other way round
(per-tensor activation on the calibration percentile, per-channel weight, round to nearest). A
local estimate, no inference pass. The scales are decided here in Python and recorded in the
plan, so a plan re-applies the same rewrite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..model.layer import Layer
from ..model.plan import EqualizedPair, Rescaling, SmoothedInput, smoothing_strength
from .equalize import MAX_SCALE, _attr, apply_equalization

# The strengths `auto` tries for each layer besides leaving it alone.
AUTO_STRENGTHS = (0.25, 0.5, 0.75, 0.95)
# `auto` keeps a strength only when it lowers the layer's simulated error by this factor.
MIN_GAIN = 0.95


@dataclass(frozen=True)
class Site:
    """A node whose input can be smoothed: its weight initializer, and the weight's input-
    channel axis."""

    node: onnx.NodeProto
    weight: str
    axis: int


@dataclass(frozen=True)
class InputProbe:
    """A layer's input seen by the probe: max |x_k| per input channel in each calibration
    sample ([samples, channels]); sampled rows (one input position each, [rows, channels]) and
    the sample each came from, for the simulated error."""

    sample_ranges: np.ndarray
    rows: np.ndarray
    row_samples: np.ndarray

    @property
    def ranges(self) -> np.ndarray:
        """max |x_k| over all samples."""
        return self.sample_ranges.max(axis=0)


def sites(model: onnx.ModelProto) -> dict[str, Site]:
    """Every named 1x1 conv (group 1), Gemm (A not transposed) and MatMul whose weight is a 2-D
    (4-D for convs) initializer used by that node alone, by node name."""
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    for value in model.graph.output:
        uses[value.name] = uses.get(value.name, 0) + 1
    found = {}
    for node in model.graph.node:
        if not node.name or len(node.input) < 2 or uses.get(node.input[1]) != 1:
            continue
        w = weights.get(node.input[1])
        if w is None:
            continue
        if node.op_type == "Conv" and len(w) >= 3 and all(d == 1 for d in w[2:]):
            if int(_attr(node, "group", 1)) == 1:
                found[node.name] = Site(node, node.input[1], 1)
        elif node.op_type == "Gemm" and len(w) == 2 and not int(_attr(node, "transA", 0)):
            found[node.name] = Site(node, node.input[1], 1 if int(_attr(node, "transB", 0)) else 0)
        elif node.op_type == "MatMul" and len(w) == 2:
            found[node.name] = Site(node, node.input[1], 0)
    return found


def probed(layer: Layer) -> bool:
    """Whether the probe should sample `layer`'s input for smoothing (ONNX decides at last)."""
    if layer.unquantizable_reason or layer.activation_matmul:
        return False
    if layer.kind == "conv":
        return all(d == 1 for d in layer.weight_shape[2:])
    return layer.kind == "matmul" and layer.onnx_op in ("MatMul", "Gemm")


def _weight_rows(w: np.ndarray, axis: int) -> np.ndarray:
    """The weight as [input channels, everything else]."""
    return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)


def scales(x_max: np.ndarray, w_max: np.ndarray, strength: float) -> np.ndarray:
    """SmoothQuant's s_k = x_k^α / w_k^(1-α), geometric mean 1 over the channels where both
    are non-zero (the others keep 1), within MAX_SCALE of 1."""
    x = np.asarray(x_max, np.float64)
    w = np.asarray(w_max, np.float64)
    live = (x > 0) & (w > 0)
    if not live.any():
        return np.ones_like(x)
    s = np.ones_like(x)
    s[live] = x[live] ** strength / w[live] ** (1.0 - strength)
    s[live] /= np.exp(np.mean(np.log(s[live])))
    return np.clip(s, 1.0 / MAX_SCALE, MAX_SCALE)


def _act_grid(x: np.ndarray, percentile: float) -> tuple[float, float]:
    """(step, zero point) of a per-tensor asymmetric int8 range on `x`'s percentiles."""
    lo = min(float(np.percentile(x, 100.0 - percentile)), 0.0)
    hi = max(float(np.percentile(x, percentile)), 0.0)
    step = (hi - lo) / 255.0 or 1.0
    return step, float(np.round(-128.0 - lo / step))


def _fake_quant_weight(w: np.ndarray) -> np.ndarray:
    step = np.abs(w).max(axis=0) / 127.0
    step[step == 0] = 1.0
    return np.clip(np.round(w / step), -127, 127) * step


def simulated_error(
    fit: np.ndarray, test: np.ndarray, w: np.ndarray, s: np.ndarray, percentile: float
) -> float:
    """Relative squared error of the int8 layer with weight w ([K, N]) and input scales s on
    the rows `test` ([P, K]), its activation range calibrated on the rows `fit`:
    ‖Q(x / s) · Q(s w) − x · w‖² / ‖x · w‖²."""
    step, zero = _act_grid(fit.astype(np.float64) / s, percentile)
    x = test.astype(np.float64)
    q = (np.clip(np.round(x / s / step) + zero, -128, 127) - zero) * step
    ref = x @ w
    got = q @ _fake_quant_weight(w * s[:, None])
    return float(np.sum((got - ref) ** 2) / max(float(np.sum(ref**2)), 1e-30))


def cross_validated_error(
    probe: InputProbe, w: np.ndarray, strength: float, percentile: float
) -> float:
    """simulated_error with the scales and range from the even calibration samples tested on
    the odd ones' rows, plus the other way round (all on all with a single sample)."""
    n = probe.sample_ranges.shape[0]
    folds = [np.arange(n) % 2 == 0, np.arange(n) % 2 == 1] if n > 1 else [np.ones(n, bool)] * 2
    w_max = np.abs(w).max(axis=1)
    total = 0.0
    for fit, test in (folds, folds[::-1]):
        fit_rows = probe.rows[fit[probe.row_samples]]
        test_rows = probe.rows[test[probe.row_samples]]
        if strength > 0:
            s = scales(probe.sample_ranges[fit].max(axis=0), w_max, strength)
        else:
            s = np.ones(w.shape[0])
        total += simulated_error(fit_rows, test_rows, w, s, percentile)
    return total


def input_smoothing(
    model: onnx.ModelProto,
    probes: Mapping[str, InputProbe],
    smoothing: str,
    percentile: float = 99.99,
) -> list[SmoothedInput]:
    """The smoothing of every probed site: one strength for all, or (auto) each layer's best
    of AUTO_STRENGTHS by cross-validated simulated error, none when none of them beats leaving
    it by MIN_GAIN. The scales come from all the probe's samples."""
    fixed = smoothing_strength(smoothing)
    if smoothing == "none":
        return []
    out = []
    for name, site in sites(model).items():
        probe = probes.get(name)
        if probe is None or not np.any(probe.ranges > 0) or len(probe.rows) == 0:
            continue
        w = _weight_rows(numpy_helper.to_array(_initializer(model, site.weight)), site.axis)
        w = w.astype(np.float64)
        if w.shape[0] != probe.ranges.size:
            continue
        strength = fixed
        if strength is None:
            best = (cross_validated_error(probe, w, 0.0, percentile) * MIN_GAIN, 0.0)
            for alpha in AUTO_STRENGTHS:
                best = min(best, (cross_validated_error(probe, w, alpha, percentile), alpha))
            strength = best[1]
        if strength > 0:
            s = scales(probe.ranges, np.abs(w).max(axis=1), strength)
            out.append(SmoothedInput(name, strength, _tuple(s)))
    return out


def _tuple(s: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in s)


def _initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)


def apply_smoothing(model: onnx.ModelProto, entries: Sequence[SmoothedInput]) -> onnx.ModelProto:
    """A copy of `model` with each entry's Mul inserted and weight rescaled. Raises ValueError
    for a node that is no site, or scales that do not match its input channels."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    found = sites(out)
    muls: dict[str, onnx.NodeProto] = {}
    for entry in entries:
        site = found.get(entry.node)
        if site is None or entry.node in muls:
            raise ValueError(f"'{entry.node}' is no 1x1 conv, Gemm or MatMul with its own weight")
        init = _initializer(out, site.weight)
        w = numpy_helper.to_array(init).astype(np.float64)
        s = np.asarray(entry.scales, np.float64)
        if s.size != w.shape[site.axis] or not np.all(np.isfinite(s) & (s > 0)):
            raise ValueError(f"'{entry.node}': {s.size} scales for {w.shape[site.axis]} channels")
        shape = [1] * w.ndim
        shape[site.axis] = s.size
        init.CopyFrom(numpy_helper.from_array((w * s.reshape(shape)).astype(np.float32), init.name))
        # The input's channels: axis 1 of a conv's NCHW input, the last of a matmul's.
        conv = site.node.op_type == "Conv"
        inverse = (1.0 / s).reshape([1, -1] + [1] * (w.ndim - 2) if conv else [-1])
        key = f"{entry.node}/quantune_smooth"
        out.graph.initializer.append(numpy_helper.from_array(inverse.astype(np.float32), key))
        muls[entry.node] = onnx.helper.make_node(
            "Mul", [site.node.input[0], key], [key + "ed"], name=key
        )
        site.node.input[0] = key + "ed"
    nodes = []
    for node in out.graph.node:
        if node.name in muls:
            nodes.append(muls[node.name])
        nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def apply_rescalings(model: onnx.ModelProto, entries: Sequence[Rescaling]) -> onnx.ModelProto:
    """Cross-layer pairs (ir.equalize), then input smoothing, as a plan records them."""
    pairs = [e for e in entries if isinstance(e, EqualizedPair)]
    smoothed = [e for e in entries if isinstance(e, SmoothedInput)]
    if pairs:
        model = apply_equalization(model, pairs)
    return apply_smoothing(model, smoothed) if smoothed else model

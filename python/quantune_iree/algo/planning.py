"""The plan's arithmetic and the per-layer metrics: scales for every layer that can be int8 from
the FP32 pass's statistics, and QuantuneV2's local metrics from the two passes' errors.

REFERENCE §1 definitions: weight SQNR/MSE from quantize→dequantize of the weights; activation
SQNR/MSE of each layer's output tap in the INT8 pass vs the FP32 pass; SQNR delta = input-tap
SQNR − output-tap SQNR in the INT8 pass (the noise the layer adds on top of what reached it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from ..errors import QuantuneError
from ..model.layer import Layer
from ..model.plan import ActivationQuant, LayerPlan, Plan, QuantConfig, SensitivityMetrics
from ..model.results import CalibrationResult, Int8PassResult, LayerCalibration, LayerMetrics
from .bias_correction import analytic_correction, empirical_correction
from .metrics import mse, sqnr
from .quantization import (
    activation_params,
    choose_range,
    dequantize_weight,
    quantize_weight,
    weight_scales,
)
from .rounding import gptq_offsets


def layer_quantization(layer: Layer, stats: CalibrationResult, config: QuantConfig) -> LayerPlan:
    """One int8 layer's plan: activation params (from its input statistics, by the configured
    method), weight scales, and with analytic bias correction the correction."""
    by_id = {lc.layer_id: lc for lc in stats.layers}
    if layer.id not in by_id:
        raise QuantuneError(
            f"layer {layer.id} ('{layer.label}') was not calibrated", layer=layer.id
        )
    calib = by_id[layer.id]
    lo, hi, method = choose_range(
        calib.input, config.calibration, config.percentile, config.symmetric
    )
    act = activation_params(lo, hi, config.symmetric)
    if layer.activation_matmul:
        return _activation_matmul(layer, calib, config, act, method)
    assert layer.weight is not None
    scales = tuple(
        float(s) for s in weight_scales(layer.weight, layer.weight_channel_dims, config.per_channel)
    )
    offsets = None
    if config.weight_rounding == "gptq" and calib.hessian is not None:
        offsets = gptq_offsets(layer, scales, calib.hessian)
        offsets.setflags(write=False)
    correction: tuple[float, ...] = ()
    if config.bias_correction == "analytic" and calib.input_means is not None:
        correction = _rounded(analytic_correction(layer, scales, calib.input_means, offsets))
    return LayerPlan(
        layer.id,
        layer.node,
        "int8",
        act,
        scales,
        range_method=method,
        bias_correction=correction,
        weight_offsets=offsets,
    )


def _activation_matmul(
    layer: Layer, calib: LayerCalibration, config: QuantConfig, act: ActivationQuant, method: str
) -> LayerPlan:
    """Both operands are activations: the first quantized as any layer input, the second
    symmetric (one scale, as `weight_scales`), its range by the same method."""
    if calib.rhs is None:
        raise QuantuneError(
            f"layer {layer.id} ('{layer.label}'): its second operand was not calibrated",
            layer=layer.id,
        )
    lo, hi, _ = choose_range(calib.rhs, config.calibration, config.percentile, symmetric=True)
    amax = max(abs(lo), abs(hi))
    scale = float(np.float32(amax / 127.0)) if amax > 0 else 1.0
    return LayerPlan(layer.id, layer.node, "int8", act, (scale,), range_method=method)


def _rounded(values: np.ndarray) -> tuple[float, ...]:
    """float32 values as the plan stores them."""
    return tuple(float(v) for v in np.asarray(values, np.float32))


def with_empirical_corrections(
    plan: Plan, calibration: CalibrationResult, int8: Int8PassResult, layers: Sequence[Layer]
) -> Plan:
    """The plan with each int8 layer corrected for the mean error it added itself in the INT8
    pass (one shot, from the pass already run: algo.bias_correction)."""
    fp32 = {lc.layer_id: lc for lc in calibration.layers}
    errors = {e.layer_id: e for e in int8.layers}
    by_id = {lay.id: lay for lay in layers}
    out = []
    for lp in plan.layers:
        lc, err = fp32.get(lp.layer_id), errors.get(lp.layer_id)
        if (
            lp.activation is not None
            and lc is not None
            and err is not None
            and lc.input_means is not None
            and lc.output_means is not None
            and err.input_means is not None
            and err.output_means is not None
        ):
            c = empirical_correction(
                by_id[lp.layer_id],
                lc.input_means,
                lc.output_means,
                err.input_means,
                err.output_means,
            )
            lp = replace(lp, bias_correction=_rounded(c))
        out.append(lp)
    return replace(plan, layers=tuple(out))


def build_plan(
    model_sha256: str,
    layers: Sequence[Layer],
    stats: CalibrationResult,
    config: QuantConfig,
    fp32_layers: Iterable[int] = (),
) -> Plan:
    """Every quantizable layer int8 except `fp32_layers`; all of them carry their scales, so a
    reviewer can flip a layer in the JSON without re-running the analysis."""
    keep = set(fp32_layers)
    out = []
    for layer in layers:
        why_not = layer.unquantizable_reason
        if why_not:
            out.append(LayerPlan(layer.id, layer.node, "fp32", reason=why_not))
            continue
        lp = layer_quantization(layer, stats, config)
        out.append(replace(lp, precision="fp32") if layer.id in keep else lp)
    return Plan(model_sha256, config, tuple(out))


def weight_metrics(
    layer: Layer, scales: Sequence[float], offsets: np.ndarray | None = None
) -> tuple[float, float]:
    """(SQNR dB, MSE) of a layer's weights after quantize→dequantize with `scales` (and the
    plan's rounding `offsets`)."""
    if layer.activation_matmul:  # no weight: its second operand's error shows in its output
        return float("nan"), float("nan")
    assert layer.weight is not None
    s = np.asarray(scales, np.float32)
    q = quantize_weight(layer.weight, s, layer.weight_channel_dims, offsets)
    w_hat = dequantize_weight(q, s, layer.weight_channel_dims)
    return sqnr(layer.weight, w_hat), mse(layer.weight, w_hat)


def _delta(inp: float, out: float, ceiling: float | None) -> float:
    """input − output SQNR. A layer fed the exact FP32 input (no int8 layer upstream: input
    SQNR inf) is measured from `ceiling`, the cleanest finite input any layer gets, not from
    inf: otherwise every such layer ranks first, however little noise it adds (MobileNetV2's
    stem conv at 50.9 dB; MiniLM's first three projections at 34 dB, ahead of its 2 dB layer)."""
    if np.isinf(inp) and np.isinf(out):
        return 0.0
    if np.isposinf(inp) and ceiling is not None:
        inp = ceiling
    return float(inp - out)


def layer_metrics(
    layers: Sequence[Layer], plan: Plan, int8: Int8PassResult
) -> tuple[LayerMetrics, ...]:
    """The local metrics of every int8 layer of `plan` (the plan the INT8 pass ran)."""
    errors = {e.layer_id: e for e in int8.layers}
    by_id = {lay.id: lay for lay in layers}
    finite = [e.input_sqnr_db for e in int8.layers if np.isfinite(e.input_sqnr_db)]
    ceiling = max(finite) if finite else None
    metrics = []
    for lp in plan.int8_layers:
        layer, err = by_id[lp.layer_id], errors[lp.layer_id]
        w_sqnr, w_mse = weight_metrics(layer, lp.weight_scales, lp.weight_offsets)
        metrics.append(
            LayerMetrics(
                layer.id,
                layer.node,
                layer.kind,
                SensitivityMetrics(
                    weight_sqnr_db=w_sqnr,
                    weight_mse=w_mse,
                    input_sqnr_db=err.input_sqnr_db,
                    act_sqnr_db=err.output_sqnr_db,
                    act_mse=err.output_mse,
                    sqnr_delta_db=_delta(err.input_sqnr_db, err.output_sqnr_db, ceiling),
                ),
            )
        )
    return tuple(metrics)

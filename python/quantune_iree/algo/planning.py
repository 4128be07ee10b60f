"""The plan's arithmetic and the per-layer metrics: scales for every layer that can be int8 from
the FP32 pass's statistics, and QuantuneV2's local metrics from the two passes' errors.

REFERENCE §1 definitions: weight SQNR/MSE from quantize→dequantize of the weights; activation
SQNR/MSE of each layer's output tap in the INT8 pass vs the FP32 pass; SQNR delta = input-tap
SQNR − output-tap SQNR in the INT8 pass (the noise the layer adds on top of what reached it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import QuantuneError
from ..model.layer import Layer
from ..model.plan import ActivationQuant, LayerPlan, Plan, QuantConfig, SensitivityMetrics
from ..model.results import CalibrationResult, Int8PassResult, LayerMetrics
from .metrics import mse, sqnr
from .quantization import (
    activation_params,
    activation_range,
    dequantize_weight,
    quantize_weight,
    weight_scales,
)


def layer_quantization(
    layer: Layer, stats: CalibrationResult, config: QuantConfig
) -> tuple[ActivationQuant, tuple[float, ...]]:
    """Activation params (from the layer's input statistics) and weight scales of one layer."""
    by_id = {lc.layer_id: lc for lc in stats.layers}
    if layer.id not in by_id:
        raise QuantuneError(
            f"layer {layer.id} ('{layer.label}') was not calibrated", layer=layer.id
        )
    lo, hi = activation_range(by_id[layer.id].input, config.calibration, config.percentile)
    act = activation_params(lo, hi, config.symmetric)
    assert layer.weight is not None
    scales = weight_scales(layer.weight, layer.weight_channel_dims, config.per_channel)
    return act, tuple(float(s) for s in scales)


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
        act, scales = layer_quantization(layer, stats, config)
        precision = "fp32" if layer.id in keep else "int8"
        out.append(LayerPlan(layer.id, layer.node, precision, act, scales))
    return Plan(model_sha256, config, tuple(out))


def weight_metrics(layer: Layer, scales: Sequence[float]) -> tuple[float, float]:
    """(SQNR dB, MSE) of a layer's weights after quantize→dequantize with `scales`."""
    assert layer.weight is not None
    s = np.asarray(scales, np.float32)
    q = quantize_weight(layer.weight, s, layer.weight_channel_dims)
    w_hat = dequantize_weight(q, s, layer.weight_channel_dims)
    return sqnr(layer.weight, w_hat), mse(layer.weight, w_hat)


def _delta(inp: float, out: float) -> float:
    if np.isinf(inp) and np.isinf(out):
        return 0.0
    return float(inp - out)


def layer_metrics(
    layers: Sequence[Layer], plan: Plan, int8: Int8PassResult
) -> tuple[LayerMetrics, ...]:
    """The local metrics of every int8 layer of `plan` (the plan the INT8 pass ran)."""
    errors = {e.layer_id: e for e in int8.layers}
    by_id = {lay.id: lay for lay in layers}
    metrics = []
    for lp in plan.int8_layers:
        layer, err = by_id[lp.layer_id], errors[lp.layer_id]
        w_sqnr, w_mse = weight_metrics(layer, lp.weight_scales)
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
                    sqnr_delta_db=_delta(err.input_sqnr_db, err.output_sqnr_db),
                ),
            )
        )
    return tuple(metrics)

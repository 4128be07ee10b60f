"""The precision plan: per layer, int8 (with its scales) or fp32. Frozen data, built by pure
functions; the compiler stage applies it and decides nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .calibrate import CalibrationResult
from .errors import QuantuneError
from .layers import Layer
from .quantization import ActivationQuant, activation_params, activation_range, weight_scales

PLAN_VERSION = 1


@dataclass(frozen=True)
class QuantConfig:
    """How int8 layers are quantized."""

    calibration: str = "minmax"  # minmax | percentile | entropy | mse
    percentile: float = 99.99
    symmetric: bool = False  # activations; weights are always symmetric
    per_channel: bool = True  # weights


@dataclass(frozen=True)
class LayerPlan:
    layer_id: int
    node: str
    precision: str  # int8 | fp32
    activation: ActivationQuant | None = None
    weight_scales: tuple[float, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    model_sha256: str
    config: QuantConfig
    layers: tuple[LayerPlan, ...]
    version: int = PLAN_VERSION

    @property
    def int8_layers(self) -> tuple[LayerPlan, ...]:
        return tuple(lp for lp in self.layers if lp.precision == "int8")


def quantizable(layer: Layer) -> str:
    """'' when `layer` can become int8, else why not."""
    if layer.precision != "fp32":
        return "already quantized"
    if layer.weight is None or layer.weight.dtype != np.float32:
        return "weight is not an f32 constant"
    return ""


def layer_quantization(
    layer: Layer, stats: CalibrationResult, config: QuantConfig
) -> tuple[ActivationQuant, tuple[float, ...]]:
    """Activation params (from the layer's input statistics) and weight scales of one layer."""
    by_id = {lc.layer_id: lc for lc in stats.layers}
    if layer.id not in by_id:
        raise QuantuneError(f"layer {layer.id} ('{layer.label}') was not calibrated")
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
    reasons: Mapping[int, str] | None = None,
) -> Plan:
    """Every quantizable layer int8 except `fp32_layers` (and those that cannot be)."""
    keep = set(fp32_layers)
    out = []
    for layer in layers:
        why_not = quantizable(layer)
        if why_not or layer.id in keep:
            reason = why_not or (reasons or {}).get(layer.id, "kept in fp32")
            out.append(LayerPlan(layer.id, layer.node, "fp32", reason=reason))
            continue
        act, scales = layer_quantization(layer, stats, config)
        out.append(LayerPlan(layer.id, layer.node, "int8", act, scales))
    return Plan(model_sha256, config, tuple(out))

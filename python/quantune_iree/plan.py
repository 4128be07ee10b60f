"""The precision plan: per layer, int8 (with its scales) or fp32, and why. Frozen data built by
pure functions, saved as versioned JSON that a user can review, edit and re-apply; the compiler
stage applies it and decides nothing."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from .errors import QuantuneError
from .layers import Layer
from .quantization import (
    CALIBRATION_METHODS,
    ActivationQuant,
    activation_params,
    activation_range,
    weight_scales,
)

if TYPE_CHECKING:  # calibrate → compile → plan: import for typing only
    from .calibrate import CalibrationResult

# Plan file format version: 1 = first format (layers with precision, scales, metrics, rank).
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
    activation: ActivationQuant | None = None  # set for every layer that can be int8
    weight_scales: tuple[float, ...] = ()
    reason: str = ""
    rank: int | None = None  # 0 = most sensitive
    score: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Plan:
    model_sha256: str
    config: QuantConfig
    layers: tuple[LayerPlan, ...]
    version: int = PLAN_VERSION

    @property
    def int8_layers(self) -> tuple[LayerPlan, ...]:
        return tuple(lp for lp in self.layers if lp.precision == "int8")

    @property
    def fp32_layers(self) -> tuple[LayerPlan, ...]:
        return tuple(lp for lp in self.layers if lp.precision == "fp32")


def unquantizable_reason(layer: Layer) -> str:
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
) -> Plan:
    """Every quantizable layer int8 except `fp32_layers`; all of them carry their scales, so a
    reviewer can flip a layer in the JSON without re-running the analysis."""
    keep = set(fp32_layers)
    out = []
    for layer in layers:
        why_not = unquantizable_reason(layer)
        if why_not:
            out.append(LayerPlan(layer.id, layer.node, "fp32", reason=why_not))
            continue
        act, scales = layer_quantization(layer, stats, config)
        precision = "fp32" if layer.id in keep else "int8"
        out.append(LayerPlan(layer.id, layer.node, precision, act, scales))
    return Plan(model_sha256, config, tuple(out))


def with_precisions(
    plan: Plan,
    fp32: Iterable[int],
    reasons: Mapping[int, str] | None = None,
    ranks: Mapping[int, tuple[int, float]] | None = None,
    metrics: Mapping[int, Mapping[str, float]] | None = None,
) -> Plan:
    """The plan with exactly `fp32` (among layers that can be int8) kept in fp32."""
    keep = set(fp32)
    layers = []
    for lp in plan.layers:
        if lp.activation is not None:
            lp = replace(lp, precision="fp32" if lp.layer_id in keep else "int8")
        if reasons and lp.layer_id in reasons:
            lp = replace(lp, reason=reasons[lp.layer_id])
        if ranks and lp.layer_id in ranks:
            lp = replace(lp, rank=ranks[lp.layer_id][0], score=ranks[lp.layer_id][1])
        if metrics and lp.layer_id in metrics:
            lp = replace(lp, metrics=dict(metrics[lp.layer_id]))
        layers.append(lp)
    return replace(plan, layers=tuple(layers))


def _num(x: float) -> float | str:
    """JSON has no inf/nan: write them as strings."""
    return x if math.isfinite(x) else str(x)


def plan_to_json(plan: Plan, tool: str) -> str:
    data = {
        "format": "quantune-iree plan",
        "version": plan.version,
        "tool": tool,
        "model_sha256": plan.model_sha256,
        "config": {
            "calibration": plan.config.calibration,
            "percentile": plan.config.percentile,
            "symmetric_activations": plan.config.symmetric,
            "per_channel_weights": plan.config.per_channel,
        },
        "summary": {
            "layers": len(plan.layers),
            "int8": len(plan.int8_layers),
            "fp32": len(plan.fp32_layers),
        },
        "layers": [
            {
                "id": lp.layer_id,
                "node": lp.node,
                "precision": lp.precision,
                "reason": lp.reason,
                "rank": lp.rank,
                "score": None if lp.score is None else _num(lp.score),
                "activation": None
                if lp.activation is None
                else {"scale": lp.activation.scale, "zero_point": lp.activation.zero_point},
                "weight_scales": list(lp.weight_scales),
                "metrics": {k: _num(v) for k, v in lp.metrics.items()},
            }
            for lp in plan.layers
        ],
    }
    return json.dumps(data, indent=1) + "\n"


def plan_from_json(text: str, source: str) -> Plan:
    """Parses and checks a plan file; every problem is one QuantuneError naming `source`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise QuantuneError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != "quantune-iree plan":
        raise QuantuneError(f"{source}: not a quantune-iree plan file")
    if data.get("version") != PLAN_VERSION:
        raise QuantuneError(
            f"{source}: plan format version {data.get('version')}, this tool reads {PLAN_VERSION}"
        )
    try:
        cfg = data["config"]
        config = QuantConfig(
            calibration=str(cfg["calibration"]),
            percentile=float(cfg["percentile"]),
            symmetric=bool(cfg["symmetric_activations"]),
            per_channel=bool(cfg["per_channel_weights"]),
        )
        layers = []
        for i, entry in enumerate(data["layers"]):
            precision = entry["precision"]
            if precision not in ("int8", "fp32"):
                raise QuantuneError(
                    f"{source}: layer {entry.get('id')} has precision '{precision}' "
                    "(expected int8 or fp32)"
                )
            act = entry.get("activation")
            activation = (
                None
                if act is None
                else ActivationQuant(float(act["scale"]), int(act["zero_point"]))
            )
            if precision == "int8" and activation is None:
                raise QuantuneError(
                    f"{source}: layer {entry['id']} is int8 but has no activation scale"
                )
            layers.append(
                LayerPlan(
                    layer_id=int(entry["id"]),
                    node=str(entry["node"]),
                    precision=precision,
                    activation=activation,
                    weight_scales=tuple(float(s) for s in entry.get("weight_scales", [])),
                    reason=str(entry.get("reason", "")),
                    rank=entry.get("rank"),
                    score=None if entry.get("score") is None else float(entry["score"]),
                    metrics={k: float(v) for k, v in entry.get("metrics", {}).items()},
                )
            )
            if layers[-1].layer_id != i:
                raise QuantuneError(f"{source}: layer ids must be 0, 1, 2, … in order")
        sha = str(data["model_sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise QuantuneError(f"{source}: malformed plan ({type(exc).__name__}: {exc})") from None
    if config.calibration not in CALIBRATION_METHODS:
        raise QuantuneError(f"{source}: unknown calibration method '{config.calibration}'")
    return Plan(sha, config, tuple(layers))


def check_plan_matches(plan: Plan, layers: Sequence[Layer], model_sha256: str, source: str) -> None:
    """Refuses a plan made for another model, or naming layers the model does not have."""
    if plan.model_sha256 != model_sha256:
        raise QuantuneError(
            f"{source}: the plan was made for a model with sha256 {plan.model_sha256[:12]}…, "
            f"this model's is {model_sha256[:12]}…"
        )
    if len(plan.layers) != len(layers):
        raise QuantuneError(
            f"{source}: the plan has {len(plan.layers)} layers, the model {len(layers)}"
        )
    for lp, layer in zip(plan.layers, layers, strict=True):
        if lp.node != layer.node:
            raise QuantuneError(
                f"{source}: layer {lp.layer_id} is '{lp.node}' in the plan but "
                f"'{layer.node}' in the model"
            )
        if lp.precision == "int8" and unquantizable_reason(layer):
            raise QuantuneError(
                f"{source}: layer {lp.layer_id} ('{layer.label}') cannot be int8: "
                f"{unquantizable_reason(layer)}"
            )

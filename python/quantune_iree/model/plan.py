"""The precision plan: per layer, int8 (with its scales) or fp32, and why. Frozen data, saved as
versioned JSON that a user can review, edit and re-apply; the compiler stage applies it and
decides nothing."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import QuantuneError
from .layer import Layer

# Plan file format version: 1 = first format (layers with precision, scales, metrics, rank).
PLAN_VERSION = 1
CALIBRATION_METHODS = ("minmax", "percentile", "entropy", "mse", "auto")
BIAS_CORRECTIONS = ("none", "analytic", "empirical")
WEIGHT_ROUNDINGS = ("nearest", "gptq")
EQUALIZATIONS = ("none", "weights", "activations")
# Input smoothing: none, auto (each layer's strength chosen by its simulated error), or one
# strength in (0, 1] for every layer (ir.smooth).
SMOOTHINGS = ("none", "auto")


@dataclass(frozen=True)
class ActivationQuant:
    """q = clamp(round_half_even(x / scale) + zero_point, -128, 127)."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class QuantConfig:
    """How int8 layers are quantized."""

    # Defaults: what won on both real models (docs/results/accuracy.md).
    calibration: str = "percentile"  # one of CALIBRATION_METHODS; auto: chosen per tap
    percentile: float = 99.99
    symmetric: bool = False  # activations; weights are always symmetric
    per_channel: bool = True  # weights
    bias_correction: str = "analytic"  # one of BIAS_CORRECTIONS
    weight_rounding: str = "gptq"  # one of WEIGHT_ROUNDINGS
    equalization: str = "activations"  # one of EQUALIZATIONS (ir.equalize)
    smoothing: str = "auto"  # one of SMOOTHINGS, or a strength in (0, 1] (ir.smooth)

    def __post_init__(self) -> None:
        if self.smoothing not in SMOOTHINGS and smoothing_strength(self.smoothing) is None:
            raise QuantuneError(
                f"unknown smoothing '{self.smoothing}'; choose none, auto or a strength in (0, 1]"
            )
        for value, choices, what in (
            (self.calibration, CALIBRATION_METHODS, "calibration method"),
            (self.bias_correction, BIAS_CORRECTIONS, "bias correction"),
            (self.weight_rounding, WEIGHT_ROUNDINGS, "weight rounding"),
            (self.equalization, EQUALIZATIONS, "equalization"),
        ):
            if value not in choices:
                raise QuantuneError(f"unknown {what} '{value}'; choose from {', '.join(choices)}")


def smoothing_strength(text: str) -> float | None:
    """The fixed strength `text` names (a number in (0, 1]), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 < value <= 1.0 else None


@dataclass(frozen=True)
class SensitivityMetrics:
    """A layer's local error metrics from the two passes (the plan file's `metrics`)."""

    weight_sqnr_db: float
    weight_mse: float
    input_sqnr_db: float  # INT8 pass, the layer's input tap
    act_sqnr_db: float  # INT8 pass, the layer's output tap
    act_mse: float
    sqnr_delta_db: float  # input_sqnr_db - act_sqnr_db


METRIC_NAMES = tuple(f.name for f in dataclasses.fields(SensitivityMetrics))


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
    metrics: SensitivityMetrics | None = field(default=None, compare=False)
    # The calibration method that gave `activation` (auto picks one per layer).
    range_method: str = ""
    # Added to each output channel (in output units) by folding into the int32 bias; () = none.
    bias_correction: tuple[float, ...] = ()
    # Added to each round-to-nearest weight code (GPTQ rounding), int8 in the weight operand's
    # layout; None = round to nearest.
    weight_offsets: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class EqualizedPair:
    """Cross-layer equalization of ONNX conv `first` → (activation) → conv `second`: channel c
    of the tensor between them divided by scales[c] (ir.equalize applies it before import)."""

    first: str  # ONNX node names
    second: str
    scales: tuple[float, ...]


@dataclass(frozen=True)
class SmoothedInput:
    """Input smoothing of ONNX node `node` (a 1x1 conv, Gemm or MatMul with a constant weight):
    input channel k divided by scales[k], the weight's input channel k multiplied by it
    (ir.smooth applies it before import). `strength`: the α that gave the scales."""

    node: str
    strength: float
    scales: tuple[float, ...]


# What is applied to the ONNX graph before import, in order: cross-layer pairs, then smoothing.
Rescaling = EqualizedPair | SmoothedInput


@dataclass(frozen=True)
class Plan:
    model_sha256: str
    config: QuantConfig
    layers: tuple[LayerPlan, ...]
    version: int = PLAN_VERSION
    # Applied to the ONNX graph before import, so the layers' weights are the rescaled ones.
    equalization: tuple[Rescaling, ...] = ()

    @property
    def smoothing(self) -> dict[str, SmoothedInput]:
        """The smoothed layers' entries, by node name."""
        return {e.node: e for e in self.equalization if isinstance(e, SmoothedInput)}

    @property
    def int8_layers(self) -> tuple[LayerPlan, ...]:
        return tuple(lp for lp in self.layers if lp.precision == "int8")

    @property
    def fp32_layers(self) -> tuple[LayerPlan, ...]:
        return tuple(lp for lp in self.layers if lp.precision == "fp32")


def with_precisions(
    plan: Plan,
    fp32: Iterable[int],
    reasons: Mapping[int, str] | None = None,
    ranks: Mapping[int, tuple[int, float]] | None = None,
    metrics: Mapping[int, SensitivityMetrics] | None = None,
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
            lp = replace(lp, metrics=metrics[lp.layer_id])
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
            "bias_correction": plan.config.bias_correction,
            "weight_rounding": plan.config.weight_rounding,
            "equalization": plan.config.equalization,
            "smoothing": plan.config.smoothing,
        },
        "summary": {
            "layers": len(plan.layers),
            "int8": len(plan.int8_layers),
            "fp32": len(plan.fp32_layers),
        },
        "equalization": [
            {"first": p.first, "second": p.second, "scales": list(p.scales)}
            if isinstance(p, EqualizedPair)
            else {"smooth": p.node, "strength": p.strength, "scales": list(p.scales)}
            for p in plan.equalization
        ],
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
                "range_method": lp.range_method,
                "bias_correction": list(lp.bias_correction),
                "weight_offsets": _pack_offsets(lp.weight_offsets),
                "metrics": {}
                if lp.metrics is None
                else {k: _num(v) for k, v in dataclasses.asdict(lp.metrics).items()},
            }
            for lp in plan.layers
        ],
    }
    return json.dumps(data, indent=1) + "\n"


def _pack_offsets(offsets: np.ndarray | None) -> str | None:
    """Rounding offsets as base64 of zlib-compressed int8 bytes (mostly zeros: compact)."""
    if offsets is None:
        return None
    return base64.b64encode(zlib.compress(np.asarray(offsets, np.int8).tobytes(), 9)).decode()


def _unpack_offsets(text: object, entry: Mapping[str, Any], source: str) -> np.ndarray | None:
    if text is None:
        return None
    try:
        raw = zlib.decompress(base64.b64decode(str(text), validate=True))
    except (ValueError, zlib.error) as exc:
        raise QuantuneError(
            f"{source}: layer {entry.get('id')} weight_offsets are not base64 zlib data ({exc})",
            file=source,
        ) from None
    offsets = np.frombuffer(raw, np.int8).copy()
    offsets.setflags(write=False)
    return offsets


def _metrics(entry: Mapping[str, Any], source: str) -> SensitivityMetrics | None:
    values = entry.get("metrics") or {}
    if not values:
        return None
    if set(values) != set(METRIC_NAMES):
        raise QuantuneError(
            f"{source}: layer {entry.get('id')} metrics must be {', '.join(METRIC_NAMES)}",
            file=source,
        )
    return SensitivityMetrics(**{k: float(v) for k, v in values.items()})


def _layer_from_json(entry: Mapping[str, Any], source: str) -> LayerPlan:
    precision = entry["precision"]
    if precision not in ("int8", "fp32"):
        raise QuantuneError(
            f"{source}: layer {entry.get('id')} has precision '{precision}' "
            "(expected int8 or fp32)",
            file=source,
        )
    act = entry.get("activation")
    activation = (
        None if act is None else ActivationQuant(float(act["scale"]), int(act["zero_point"]))
    )
    if precision == "int8" and activation is None:
        raise QuantuneError(
            f"{source}: layer {entry['id']} is int8 but has no activation scale", file=source
        )
    score = entry.get("score")
    return LayerPlan(
        layer_id=int(entry["id"]),
        node=str(entry["node"]),
        precision=str(precision),
        activation=activation,
        weight_scales=tuple(float(s) for s in entry.get("weight_scales", [])),
        range_method=str(entry.get("range_method", "")),
        bias_correction=tuple(float(c) for c in entry.get("bias_correction", [])),
        weight_offsets=_unpack_offsets(entry.get("weight_offsets"), entry, source),
        reason=str(entry.get("reason", "")),
        rank=entry.get("rank"),
        score=None if score is None else float(score),
        metrics=_metrics(entry, source),
    )


def _rescaling(entry: Mapping[str, Any]) -> Rescaling:
    scales = tuple(float(v) for v in entry["scales"])
    if "smooth" in entry:
        return SmoothedInput(str(entry["smooth"]), float(entry["strength"]), scales)
    return EqualizedPair(str(entry["first"]), str(entry["second"]), scales)


def plan_from_json(text: str, source: str) -> Plan:
    """Parses and checks a plan file; every problem is one QuantuneError naming `source`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise QuantuneError(f"{source}: not valid JSON ({exc})", file=source) from None
    if not isinstance(data, dict) or data.get("format") != "quantune-iree plan":
        raise QuantuneError(f"{source}: not a quantune-iree plan file", file=source)
    if data.get("version") != PLAN_VERSION:
        raise QuantuneError(
            f"{source}: plan format version {data.get('version')}, this tool reads {PLAN_VERSION}",
            file=source,
        )
    try:
        cfg = data["config"]
        try:
            config = QuantConfig(
                calibration=str(cfg["calibration"]),
                percentile=float(cfg["percentile"]),
                symmetric=bool(cfg["symmetric_activations"]),
                per_channel=bool(cfg["per_channel_weights"]),
                bias_correction=str(cfg.get("bias_correction", "none")),
                weight_rounding=str(cfg.get("weight_rounding", "nearest")),
                equalization=str(cfg.get("equalization", "none")),
                smoothing=str(cfg.get("smoothing", "none")),
            )
        except QuantuneError as exc:
            raise QuantuneError(f"{source}: {exc}", file=source) from None
        layers = []
        for i, entry in enumerate(data["layers"]):
            layers.append(_layer_from_json(entry, source))
            if layers[-1].layer_id != i:
                raise QuantuneError(f"{source}: layer ids must be 0, 1, 2, … in order", file=source)
        sha = str(data["model_sha256"])
        pairs = tuple(_rescaling(e) for e in data.get("equalization", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise QuantuneError(
            f"{source}: malformed plan ({type(exc).__name__}: {exc})", file=source
        ) from None
    if any(not (math.isfinite(v) and v > 0) for p in pairs for v in p.scales):
        raise QuantuneError(f"{source}: equalization scales must be positive", file=source)
    return Plan(sha, config, tuple(layers), equalization=pairs)


def check_plan_matches(plan: Plan, layers: Sequence[Layer], model_sha256: str, source: str) -> None:
    """Refuses a plan made for another model, or naming layers the model does not have."""
    if plan.model_sha256 != model_sha256:
        raise QuantuneError(
            f"{source}: the plan was made for a model with sha256 {plan.model_sha256[:12]}…, "
            f"this model's is {model_sha256[:12]}…",
            file=source,
        )
    if len(plan.layers) != len(layers):
        raise QuantuneError(
            f"{source}: the plan has {len(plan.layers)} layers, the model {len(layers)}",
            file=source,
        )
    for lp, layer in zip(plan.layers, layers, strict=True):
        if lp.node != layer.node:
            raise QuantuneError(
                f"{source}: layer {lp.layer_id} is '{lp.node}' in the plan but "
                f"'{layer.node}' in the model",
                file=source,
                layer=lp.layer_id,
            )
        if lp.precision == "int8" and layer.unquantizable_reason:
            raise QuantuneError(
                f"{source}: layer {lp.layer_id} ('{layer.label}') cannot be int8: "
                f"{layer.unquantizable_reason}",
                file=source,
                layer=lp.layer_id,
            )

"""QuantuneV2 sensitivity analysis: per-layer local metrics from exactly two full inference
passes over the calibration set (FP32, then fully INT8), plus the weights (no inference).

REFERENCE §1 definitions: weight SQNR/MSE from quantize→dequantize of the weights; activation
SQNR/MSE of each layer's output tap in the INT8 pass vs the FP32 pass; SQNR delta = input-tap
SQNR − output-tap SQNR in the INT8 pass (the noise the layer adds on top of what reached it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .calibrate import CalibrationResult, run_fp32_pass
from .importer import ImportedModel
from .int8_pass import Int8PassResult, run_int8_pass
from .layers import Layer
from .metrics import mse, sqnr
from .plan import Plan, QuantConfig, build_plan, unquantizable_reason
from .quantization import dequantize_weight, quantize_weight
from .targets import Target


@dataclass(frozen=True)
class LayerMetrics:
    layer_id: int
    node: str
    kind: str
    weight_sqnr_db: float
    weight_mse: float
    input_sqnr_db: float  # INT8 pass, the layer's input tap
    act_sqnr_db: float  # INT8 pass, the layer's output tap
    act_mse: float
    sqnr_delta_db: float  # input_sqnr_db - act_sqnr_db


@dataclass(frozen=True)
class Analysis:
    """Everything the ranking and the plan need; no tensors are kept."""

    layers: tuple[LayerMetrics, ...]
    calibration: CalibrationResult
    int8_plan: Plan  # the all-int8 plan the INT8 pass ran (scales for every layer)
    int8: Int8PassResult
    inference_passes: int  # full passes over the calibration set
    seconds: float


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


def analyze(
    model: ImportedModel,
    layers: Sequence[Layer],
    samples: Callable[[], Iterable[Sequence[np.ndarray]]],
    config: QuantConfig,
    *,
    target: Target | None = None,
    reference_elements: int = 2048,
    progress: Callable[[str, int], None] | None = None,
) -> Analysis:
    """Runs the FP32 pass and the INT8 pass (each once over `samples()`) and measures."""
    t0 = time.perf_counter()
    candidates = [lay for lay in layers if not unquantizable_reason(lay)]
    fp32 = run_fp32_pass(
        model,
        samples(),
        target=target,
        layers=candidates,
        reference_elements=reference_elements,
        progress=(lambda n: progress("FP32 pass", n)) if progress else None,
    )
    plan = build_plan(model.sha256, layers, fp32, config)
    int8 = run_int8_pass(
        model,
        plan,
        fp32,
        samples(),
        target=target,
        progress=(lambda n: progress("INT8 pass", n)) if progress else None,
    )
    errors = {e.layer_id: e for e in int8.layers}
    by_id = {lay.id: lay for lay in layers}
    metrics = []
    for lp in plan.int8_layers:
        layer, err = by_id[lp.layer_id], errors[lp.layer_id]
        w_sqnr, w_mse = weight_metrics(layer, lp.weight_scales)
        metrics.append(
            LayerMetrics(
                layer_id=layer.id,
                node=layer.node,
                kind=layer.kind,
                weight_sqnr_db=w_sqnr,
                weight_mse=w_mse,
                input_sqnr_db=err.input_sqnr_db,
                act_sqnr_db=err.output_sqnr_db,
                act_mse=err.output_mse,
                sqnr_delta_db=_delta(err.input_sqnr_db, err.output_sqnr_db),
            )
        )
    return Analysis(
        layers=tuple(metrics),
        calibration=fp32,
        int8_plan=plan,
        int8=int8,
        inference_passes=2,
        seconds=time.perf_counter() - t0,
    )

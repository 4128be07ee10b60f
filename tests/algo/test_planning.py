"""Plan arithmetic: scales from the FP32 pass's statistics and the local metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from quantune_iree.algo.observers import HistogramObserver
from quantune_iree.algo.planning import build_plan, layer_metrics, weight_metrics
from quantune_iree.errors import QuantuneError
from quantune_iree.model.layer import Layer
from quantune_iree.model.plan import QuantConfig
from quantune_iree.model.results import (
    CalibrationResult,
    Int8PassResult,
    LayerCalibration,
    LayerError,
)

W = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)  # (out, in): channel dim 0


def _layer(i: int, weight: np.ndarray | None = W, kind: str = "matmul") -> Layer:
    return Layer(i, f"n{i}", "MatMul", kind, "linalg.matmul", "fp32", (1, 2), (2, 2), (1, 2),
                 weight is not None, (0,), (1,), weight)  # fmt: skip


def _stats(lo: float, hi: float):  # noqa: ANN202 - TensorStats
    obs = HistogramObserver(16)
    obs.observe(np.array([lo, hi], np.float32))
    return obs.finalize()


CALIB = CalibrationResult(
    layers=(LayerCalibration(0, "n0", _stats(-1.0, 3.0), _stats(0.0, 1.0)),),
    samples=1, inference_passes=1, invocations=1, num_taps=2,
    compile_seconds=0.0, run_seconds=0.0, peak_rss_mb=0.0,
)  # fmt: skip


def test_build_plan_scales_every_quantizable_layer() -> None:
    layers = [_layer(0), _layer(1, None, kind="conv")]  # a conv on a computed weight
    plan = build_plan("sha", layers, CALIB, QuantConfig())
    lp, skipped = plan.layers
    assert lp.precision == "int8" and lp.weight_scales == pytest.approx((2 / 127, 0.5 / 127))
    assert lp.activation is not None and lp.activation.scale == pytest.approx(4 / 255, rel=1e-6)
    assert skipped.precision == "fp32" and skipped.activation is None
    kept = build_plan("sha", layers[:1], CALIB, QuantConfig(), fp32_layers=[0])
    assert kept.layers[0].precision == "fp32" and kept.layers[0].activation is not None


def test_an_uncalibrated_layer_is_refused() -> None:
    with pytest.raises(QuantuneError, match="was not calibrated"):
        build_plan("sha", [_layer(5)], CALIB, QuantConfig())


def test_layer_metrics_combine_weights_and_both_taps() -> None:
    plan = build_plan("sha", [_layer(0)], CALIB, QuantConfig())
    int8 = Int8PassResult((LayerError(0, "n0", 30.0, 20.0, 0.1, 0.2),), 20.0, 1.0, 1, 1, 0, 0)
    (m,) = layer_metrics([_layer(0)], plan, int8)
    assert m.metrics.sqnr_delta_db == 10.0 and m.metrics.act_mse == 0.2
    assert m.metrics.weight_sqnr_db == weight_metrics(_layer(0), plan.layers[0].weight_scales)[0]
    exact = Int8PassResult((LayerError(0, "n0", math.inf, math.inf, 0, 0),), 0, 1, 1, 1, 0, 0)
    assert layer_metrics([_layer(0)], plan, exact)[0].metrics.sqnr_delta_db == 0.0


def test_a_layer_fed_the_exact_input_is_measured_from_the_cleanest_finite_input() -> None:
    """First layers see the FP32 input itself (inf dB): their delta starts from the best finite
    input SQNR of the model, so one adding little noise does not rank first."""
    layers = [_layer(0), _layer(1), _layer(2)]
    calib = CalibrationResult(
        layers=tuple(
            LayerCalibration(i, f"n{i}", _stats(-1.0, 3.0), _stats(0.0, 1.0)) for i in range(3)
        ),
        samples=1, inference_passes=1, invocations=1, num_taps=6,
        compile_seconds=0.0, run_seconds=0.0, peak_rss_mb=0.0,
    )  # fmt: skip
    plan = build_plan("sha", layers, calib, QuantConfig())
    errors = (
        LayerError(0, "n0", math.inf, 50.0, 0, 0),  # adds little
        LayerError(1, "n1", 45.0, 20.0, 0, 0),  # adds a lot
        LayerError(2, "n2", 30.0, 28.0, 0, 0),
    )
    deltas = [
        m.metrics.sqnr_delta_db
        for m in layer_metrics(layers, plan, Int8PassResult(errors, 0, 1, 1, 1, 0, 0))
    ]
    assert deltas == [-5.0, 25.0, 2.0]


def test_activation_matmul_scales_both_operands() -> None:
    """Attention's matmuls: the first operand as any input, the second symmetric, one scale."""
    lc = LayerCalibration(0, "n0", _stats(-1.0, 3.0), _stats(0.0, 1.0), rhs=_stats(-2.0, 0.5))
    calib = CalibrationResult(
        layers=(lc,),
        samples=1, inference_passes=1, invocations=1, num_taps=3,
        compile_seconds=0.0, run_seconds=0.0, peak_rss_mb=0.0,
    )  # fmt: skip
    layer = _layer(0, None)
    assert layer.activation_matmul and not layer.unquantizable_reason
    (lp,) = build_plan("sha", [layer], calib, QuantConfig()).layers
    assert lp.precision == "int8" and lp.weight_offsets is None and lp.bias_correction == ()
    assert lp.weight_scales == pytest.approx((2 / 127,), rel=1e-3)  # the 99.99th percentile
    assert lp.activation is not None and lp.activation.scale == pytest.approx(4 / 255, rel=1e-3)
    assert all(math.isnan(v) for v in weight_metrics(layer, lp.weight_scales))
    with pytest.raises(QuantuneError, match="second operand was not calibrated"):
        build_plan("sha", [layer], CALIB, QuantConfig())

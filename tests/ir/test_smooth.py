"""Input smoothing: the model's function is unchanged (onnxruntime), the scales follow
SmoothQuant's formula, `auto` smooths a layer with an outlier input channel and leaves an even
one alone, and a plan's entries re-apply to the same graph (JSON round trip included)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from quantune_iree.errors import QuantuneError
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.ir.smooth import (
    InputProbe,
    apply_rescalings,
    apply_smoothing,
    cross_validated_error,
    input_smoothing,
    probed,
    scales,
    simulated_error,
    sites,
)
from quantune_iree.model.plan import (
    Plan,
    QuantConfig,
    SmoothedInput,
    plan_from_json,
    plan_to_json,
)

CH = 8


def _model() -> onnx.ModelProto:
    """conv (1x1) → Relu → conv3 (3x3: no site) → Reshape [1, 8, 16] → Transpose → mm (MatMul by
    [8, 8], 3-D input) → Reshape [16, 8] → gemm (transB) ; `shared` reuses conv's weight (so
    neither is a site)."""
    rng = np.random.default_rng(0)

    def init(name: str, a: np.ndarray) -> TensorProto:
        return numpy_helper.from_array(np.asarray(a, np.float32), name)

    inits = [
        init("w1", rng.standard_normal((CH, CH, 1, 1))),
        init("b1", rng.standard_normal(CH)),
        init("w3", rng.standard_normal((CH, CH, 3, 3))),
        init("ws", rng.standard_normal((CH, CH, 1, 1))),
        init("wm", np.sign(rng.standard_normal((CH, CH)))),  # even rows
        init("wg", rng.standard_normal((CH, CH))),
        init("bg", rng.standard_normal(CH)),
        numpy_helper.from_array(np.array([1, CH, 16], np.int64), "s3"),
        numpy_helper.from_array(np.array([16, CH], np.int64), "s2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], name="conv"),
        helper.make_node("Relu", ["y1"], ["r1"], name="relu"),
        helper.make_node("Conv", ["r1", "w3"], ["y3"], name="conv3", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["y3", "ws"], ["ys"], name="shared_a"),
        helper.make_node("Conv", ["ys", "ws"], ["yt"], name="shared_b"),
        helper.make_node("Reshape", ["yt", "s3"], ["t3"], name="r3"),
        helper.make_node("Transpose", ["t3"], ["tt"], name="tr", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["tt", "wm"], ["ym"], name="mm"),
        helper.make_node("Reshape", ["ym", "s2"], ["t2"], name="r2"),
        helper.make_node("Gemm", ["t2", "wg", "bg"], ["y"], name="gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "smooth",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CH, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, CH])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _entries() -> list[SmoothedInput]:
    rng = np.random.default_rng(1)
    return [
        SmoothedInput(name, 0.5, tuple(float(v) for v in rng.uniform(0.1, 10.0, CH)))
        for name in ("conv", "mm", "gemm")
    ]


def test_sites_are_1x1_convs_gemms_and_matmuls_with_their_own_weight() -> None:
    found = sites(_model())
    assert sorted(found) == ["conv", "gemm", "mm"]
    assert (found["conv"].axis, found["mm"].axis, found["gemm"].axis) == (1, 0, 1)


def test_smoothing_keeps_the_function() -> None:
    model = _model()
    x = np.random.default_rng(2).standard_normal((1, CH, 4, 4)).astype(np.float32)
    x[:, 3] *= 50.0  # an outlier channel
    smoothed = apply_smoothing(model, _entries())
    np.testing.assert_allclose(_run(smoothed, x), _run(model, x), rtol=1e-4, atol=1e-3)
    muls = [n for n in smoothed.graph.node if n.op_type == "Mul"]
    assert len(muls) == 3
    order = [n.name for n in smoothed.graph.node]
    for entry in _entries():  # each Mul right before its layer, feeding it
        mul = order.index(f"{entry.node}/quantune_smooth")
        assert order[mul + 1] == entry.node
    w1 = numpy_helper.to_array(next(t for t in smoothed.graph.initializer if t.name == "w1"))
    w0 = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w1"))
    s = np.array(_entries()[0].scales, np.float32)
    np.testing.assert_allclose(w1, w0 * s[None, :, None, None], rtol=1e-6)


def layer_table_of(model: onnx.ModelProto) -> list:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.onnx")
        onnx.save(model, path)
        return layer_table(import_onnx(path))


def test_smoothed_model_imports_with_the_layers_named_as_before() -> None:
    names = [lay.node for lay in layer_table_of(apply_rescalings(_model(), _entries()))]
    assert names == [lay.node for lay in layer_table_of(_model())]


def test_bad_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="'conv3' is no 1x1 conv"):
        apply_smoothing(_model(), [SmoothedInput("conv3", 0.5, (1.0,) * CH)])
    with pytest.raises(ValueError, match="'shared_a' is no 1x1 conv"):
        apply_smoothing(_model(), [SmoothedInput("shared_a", 0.5, (1.0,) * CH)])
    with pytest.raises(ValueError, match="3 scales for 8 channels"):
        apply_smoothing(_model(), [SmoothedInput("conv", 0.5, (1.0, 2.0, 3.0))])
    with pytest.raises(ValueError, match="scales for"):
        apply_smoothing(_model(), [SmoothedInput("conv", 0.5, (0.0,) * CH)])


def test_scales_follow_smoothquant() -> None:
    x = np.array([1.0, 4.0, 16.0, 0.0])
    w = np.array([1.0, 1.0, 4.0, 2.0])
    s = scales(x, w, 0.5)
    raw = np.sqrt(x[:3]) / np.sqrt(w[:3])  # 1, 2, 2
    np.testing.assert_allclose(s[:3], raw / np.exp(np.mean(np.log(raw))))
    assert s[3] == 1.0  # a channel never seen non-zero keeps 1
    np.testing.assert_allclose(scales(np.zeros(3), np.ones(3), 0.5), 1.0)


def _probe(outlier: float | None, seed: int = 0, samples: int = 8) -> InputProbe:
    rows = np.random.default_rng(seed).standard_normal((64 * samples, CH)).astype(np.float32)
    if outlier is None:  # every channel alike: ±1
        rows = np.sign(rows)
    else:
        rows[:, 5] *= outlier
    where = np.repeat(np.arange(samples), 64)
    ranges = np.stack([np.abs(rows[where == n]).max(axis=0) for n in range(samples)])
    return InputProbe(ranges, rows, where)


def test_auto_smooths_an_outlier_channel_and_leaves_an_even_input() -> None:
    model = _model()
    probes = {"conv": _probe(100.0), "mm": _probe(None)}
    chosen = {e.node: e for e in input_smoothing(model, probes, "auto")}
    assert set(chosen) == {"conv"}  # gemm was not probed; mm's input and weight are even
    w = numpy_helper.to_array(model.graph.initializer[0])[:, :, 0, 0].T.astype(np.float64)
    s = np.array(chosen["conv"].scales)
    x = probes["conv"].rows
    assert simulated_error(x, x, w, s, 99.99) < 0.5 * simulated_error(x, x, w, np.ones(CH), 99.99)
    fixed = input_smoothing(model, probes, "0.75")
    assert [(e.node, e.strength) for e in fixed] == [("conv", 0.75), ("mm", 0.75)]
    assert input_smoothing(model, probes, "none") == []


def test_auto_leaves_a_channel_whose_calibration_maximum_does_not_hold() -> None:
    """One input row per sample (as after a global pool): a steady large channel sets the
    range, a small heavy-tailed one has headroom under it. Smoothing takes the headroom away:
    on the calibration rows it looks better, but scales fitted on half the samples clip the
    other half, so the cross-validated error says no."""
    rng = np.random.default_rng(3)
    rows = rng.uniform(0.0, 1.0, (16, CH)).astype(np.float32)
    rows[:, 0] = 30.0 + rng.uniform(0.0, 1.0, 16)
    rows[:, 2] = rng.exponential(1.0, 16) ** 2
    probe = InputProbe(np.abs(rows), rows, np.arange(16))
    w = np.sign(rng.standard_normal((CH, CH)))
    w[0] /= 30.0
    w[2] *= 4.0
    full = scales(probe.ranges, np.abs(w).max(axis=1), 0.95)
    clean = simulated_error(rows, rows, w, np.ones(CH), 99.99)
    assert simulated_error(rows, rows, w, full, 99.99) < 0.5 * clean  # in-sample: better
    held = cross_validated_error(probe, w, 0.95, 99.99)
    assert held > 10 * cross_validated_error(probe, w, 0.0, 99.99)  # held out: far worse


def test_plan_round_trip_keeps_the_order_and_kinds() -> None:
    from quantune_iree.model.plan import EqualizedPair

    entries = (EqualizedPair("a", "b", (1.0, 2.0)), *_entries())
    plan = Plan("0" * 64, QuantConfig(smoothing="0.5"), (), equalization=entries)
    back = plan_from_json(plan_to_json(plan, "test"), "p.json")
    assert back.equalization == entries and back.config.smoothing == "0.5"
    assert set(back.smoothing) == {"conv", "mm", "gemm"}


def test_config_refuses_a_bad_smoothing() -> None:
    for bad in ("sometimes", "0", "1.5", "-0.5"):
        with pytest.raises(QuantuneError, match="unknown smoothing"):
            QuantConfig(smoothing=bad)


def test_probed_layers() -> None:
    flags = {lay.node: probed(lay) for lay in layer_table_of(_model())}
    assert flags == {
        "conv": True,
        "conv3": False,
        "shared_a": True,  # the layer table cannot see sharing; ONNX sites decide at last
        "shared_b": True,
        "mm": True,
        "gemm": True,
    }

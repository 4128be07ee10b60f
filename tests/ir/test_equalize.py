"""Cross-layer equalization: the model's function is unchanged (onnxruntime), the weight ranges
are evened out, and a plan's pairs re-apply to the same graph."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from quantune_iree.errors import QuantuneError
from quantune_iree.ir.equalize import (
    activation_equalization,
    apply_equalization,
    depthwise_pairs,
    find_chains,
    weight_equalization,
)
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.model.plan import EqualizedPair


def _model() -> onnx.ModelProto:
    """a (3x3) → Clip(0, 6) → b (depthwise 3x3) → Relu → c (1x1) → d (1x1, its input also
    feeds the output Add: not equalizable)."""
    rng = np.random.default_rng(0)
    ch = 6
    spread = np.array([0.05, 0.3, 1.0, 2.0, 4.0, 8.0], np.float32)  # uneven channel ranges

    def init(name: str, a: np.ndarray) -> TensorProto:
        return numpy_helper.from_array(a.astype(np.float32), name)

    inits = [
        init("wa", rng.standard_normal((ch, 3, 3, 3)) * spread[:, None, None, None]),
        init("ba", rng.standard_normal(ch)),
        init("wb", rng.standard_normal((ch, 1, 3, 3))),
        init("bb", rng.standard_normal(ch) * 0.1),
        init("wc", rng.standard_normal((ch, ch, 1, 1)) / spread[None, :, None, None]),
        init("wd", rng.standard_normal((ch, ch, 1, 1))),
        init("lo", np.array(0.0)),
        init("hi", np.array(6.0)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "wa", "ba"], ["ya"], name="a", pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["ya", "lo", "hi"], ["ra"], name="clip"),
        helper.make_node("Conv", ["ra", "wb", "bb"], ["yb"], name="b", pads=[1, 1, 1, 1], group=ch),
        helper.make_node("Relu", ["yb"], ["rb"], name="relu"),
        helper.make_node("Conv", ["rb", "wc"], ["yc"], name="c"),
        helper.make_node("Conv", ["yc", "wd"], ["yd"], name="d"),
        helper.make_node("Add", ["yc", "yd"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "eq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, ch, 8, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


def test_pairs_through_clip_and_relu_but_not_a_shared_tensor() -> None:
    chains = find_chains(_model())
    assert [(c.first.name, c.second.name) for c in chains] == [("a", "b"), ("b", "c")]


def test_function_is_preserved_and_ranges_evened() -> None:
    model = _model()
    pairs = weight_equalization(model)
    out = apply_equalization(model, pairs)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = (rng.standard_normal((1, 3, 8, 8)) * 3).astype(np.float32)
        want = _run(model, x)
        np.testing.assert_allclose(_run(out, x), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # Clip(0, 6) became a per-channel bound, and the clip is still active in the test.
    ops = [n.op_type for n in out.graph.node]
    assert "Clip" not in ops and ops.count("Max") == 1 and ops.count("Min") == 1
    w = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    w0 = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}

    def spread(a: np.ndarray) -> float:
        r = np.abs(a).reshape(a.shape[0], -1).max(axis=1)
        return float(r.max() / r.min())

    assert spread(w["wa"]) < spread(w0["wa"]) / 10  # the 160x channel spread is evened out
    assert model.graph.node[1].op_type == "Clip"  # the input model is untouched


def test_a_plans_pairs_reapply_and_bad_pairs_are_refused(tmp_path) -> None:
    model = _model()
    pairs = weight_equalization(model)
    again = apply_equalization(model, pairs)
    x = np.ones((1, 3, 8, 8), np.float32)
    np.testing.assert_array_equal(_run(again, x), _run(apply_equalization(model, pairs), x))
    with pytest.raises(ValueError, match="no equalizable conv pair"):
        apply_equalization(model, [EqualizedPair("c", "d", (1.0,) * 6)])
    with pytest.raises(ValueError, match="2 scales"):
        apply_equalization(model, [EqualizedPair("a", "b", (1.0, 2.0))])
    path = str(tmp_path / "eq.onnx")
    onnx.save(model, path)
    with pytest.raises(QuantuneError, match="cannot equalize"):
        import_onnx(path, equalization=[EqualizedPair("c", "d", (1.0,) * 6)])


def test_equalized_import_keeps_the_models_identity(tmp_path) -> None:
    path = str(tmp_path / "eq.onnx")
    onnx.save(_model(), path)
    plain, eq = import_onnx(path), import_onnx(path, equalization=weight_equalization)
    assert eq.sha256 == plain.sha256 and len(eq.equalization) == 2 and not plain.equalization
    assert [lay.node for lay in layer_table(eq)] == [lay.node for lay in layer_table(plain)]


def test_activation_equalization_evens_the_depthwise_input_and_keeps_every_weight_code() -> None:
    """Only chains into a depthwise conv; the channel ranges measured become equal; since both
    convs' rows are scaled whole, their per-channel int8 codes are unchanged."""
    model = _model()
    assert depthwise_pairs(model) == {"b": "a"}
    ranges = {"b": np.array([0.1, 0.5, 6.0, 3.0, 0.0, 1.5])}
    (pair,) = activation_equalization(model, ranges, strength=1.0)
    assert (pair.first, pair.second) == ("a", "b")
    np.testing.assert_allclose(pair.scales, [0.1 / 6, 0.5 / 6, 1.0, 0.5, 1.0, 0.25])
    out = apply_equalization(model, [pair])
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    want = _run(model, x)
    np.testing.assert_allclose(_run(out, x), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    w0 = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w1 = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    for name in ("wa", "wb"):
        rows0, rows1 = w0[name].reshape(6, -1), w1[name].reshape(6, -1)
        q0 = np.rint(rows0 / (np.abs(rows0).max(axis=1, keepdims=True) / 127))
        q1 = np.rint(rows1 / (np.abs(rows1).max(axis=1, keepdims=True) / 127))
        assert np.abs(q0 - q1).max() <= 1 and np.mean(q0 != q1) < 0.02  # float ties only
    assert activation_equalization(model, {}) == []
    (half,) = activation_equalization(model, ranges)  # default strength 0.5
    np.testing.assert_allclose(half.scales, np.sqrt(pair.scales))

"""The ONNX rewrites before import: weight MatMuls flattened to 2-D, values unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from models import conv_stack, tiny_encoder
from quantune_iree.ir.normalize import flatten_weight_matmuls

ort = pytest.importorskip("onnxruntime")


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_weight_matmuls_become_2d_with_the_same_values() -> None:
    model = tiny_encoder(seed=1)
    flat, count = flatten_weight_matmuls(model)
    assert count == 6  # q, k, v, o, up, down; not the two activation x activation ones
    matmuls = {n.name: n for n in flat.graph.node if n.op_type == "MatMul"}
    assert set(matmuls) == {f"{w}/MatMul" for w in ("q", "k", "v", "o", "up", "down")} | {
        "attn/QK",
        "attn/PV",
    }
    original = {n.name: n for n in model.graph.node}
    assert matmuls["attn/QK"].input == original["attn/QK"].input
    onnx.checker.check_model(flat)
    ids = np.array([[2, 7, 9, 11, 3, 0], [2, 5, 3, 0, 0, 0]], np.int64)  # batch 2: any batch works
    feeds = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)}
    for want, got in zip(_run(model, feeds), _run(flat, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert model.graph.node[2].op_type == "MatMul"  # the original is left as it was


def test_2d_matmuls_and_convs_are_left_alone() -> None:
    model = conv_stack()
    flat, count = flatten_weight_matmuls(model)
    assert count == 0
    assert [n.op_type for n in flat.graph.node] == [n.op_type for n in model.graph.node]

"""The layer table: kinds, shapes, names and weights of the quantizable ops."""

from __future__ import annotations

import models
import numpy as np
import onnx
from conftest import shared_model
from onnx import numpy_helper
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table

QUANTIZABLE_ONNX_OPS = {"Conv", "Gemm", "MatMul"}


def test_conv_stack_layers(conv_stack_model) -> None:
    layers = layer_table(conv_stack_model)
    assert [(lay.node, lay.kind) for lay in layers] == [
        ("conv0", "conv"),
        ("dwconv1", "depthwise_conv"),
        ("gconv2", "grouped_conv"),
        ("conv3", "conv"),
        ("gemm", "matmul"),
        ("matmul", "matmul"),
    ]
    assert [lay.id for lay in layers] == list(range(6))
    by_node = {lay.node: lay for lay in layers}
    # Activation input is taken before the conv's own pad; grouped conv before its reshape.
    assert by_node["conv0"].input_shape == (1, 4, 10, 10)
    assert by_node["gconv2"].input_shape == (1, 8, 10, 10)
    assert by_node["gconv2"].output_shape == (1, 8, 5, 5)
    assert by_node["gemm"].onnx_op == "Gemm" and by_node["matmul"].onnx_op == "MatMul"


def test_weights_match_onnx_initializers(conv_stack_model) -> None:
    inits = {t.name: numpy_helper.to_array(t) for t in models.conv_stack().graph.initializer}
    by_node = {lay.node: lay for lay in layer_table(conv_stack_model)}
    np.testing.assert_array_equal(by_node["conv0"].weight, inits["w0"])
    np.testing.assert_array_equal(by_node["dwconv1"].weight, inits["w1"].reshape(8, 3, 3))
    np.testing.assert_array_equal(by_node["gconv2"].weight, inits["w2"].reshape(2, 4, 4, 3, 3))
    # Gemm transB=1: the op consumes the transposed constant.
    np.testing.assert_array_equal(by_node["gemm"].weight, inits["wg"].T)
    np.testing.assert_array_equal(by_node["matmul"].weight, inits["wm"])
    assert all(lay.weight.shape == lay.weight_shape for lay in by_node.values())


def _expected_layers(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type in QUANTIZABLE_ONNX_OPS]


def test_mobilenet_v2_layer_table_matches_onnx_graph() -> None:
    path = shared_model("mobilenet_v2.onnx")
    expected = _expected_layers(onnx.load(path))
    layers = layer_table(import_onnx(path))
    assert len(layers) == len(expected) == 53  # 52 Conv + 1 Gemm
    assert [lay.node for lay in layers] == expected
    assert sum(lay.kind == "depthwise_conv" for lay in layers) == 17
    assert all(lay.weight is not None for lay in layers)


def test_efficientnet_lite0_layer_table_matches_onnx_graph() -> None:
    path = shared_model("efficientnet_lite0.onnx")
    expected = _expected_layers(onnx.load(path))
    layers = layer_table(import_onnx(path))
    assert [lay.node for lay in layers] == expected

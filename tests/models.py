"""Small ONNX models built in code for the tests. Each builder draws its graph."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name)


def conv_stack(seed: int = 0) -> onnx.ModelProto:
    """Every quantizable kind once, with a Relu between, NCHW 1x4x10x10 in, 1x5 out.

    x ─ conv (4→8, 3x3, pad 1, bias) ─ Relu ─ dwconv (8, group 8, 3x3, pad 1) ─ Relu
      ─ gconv (8→8, group 2, 3x3, stride 2, pad 1) ─ conv1x1 (8→6, no bias)
      ─ GlobalAveragePool ─ Flatten ─ Gemm (6→7, transB, bias) ─ MatMul (7→5) ─ y
    """
    rng = np.random.default_rng(seed)
    inits = [
        _init("w0", rng.standard_normal((8, 4, 3, 3)) * 0.3),
        _init("b0", rng.standard_normal(8) * 0.1),
        _init("w1", rng.standard_normal((8, 1, 3, 3)) * 0.3),
        _init("b1", rng.standard_normal(8) * 0.1),
        _init("w2", rng.standard_normal((8, 4, 3, 3)) * 0.3),
        _init("b2", rng.standard_normal(8) * 0.1),
        _init("w3", rng.standard_normal((6, 8, 1, 1)) * 0.3),
        _init("wg", rng.standard_normal((7, 6)) * 0.3),
        _init("bg", rng.standard_normal(7) * 0.1),
        _init("wm", rng.standard_normal((7, 5)) * 0.3),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
        helper.make_node(
            "Conv", ["r0", "w1", "b1"], ["c1"], name="dwconv1", group=8, pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node(
            "Conv",
            ["r1", "w2", "b2"],
            ["c2"],
            name="gconv2",
            group=2,
            pads=[1, 1, 1, 1],
            strides=[2, 2],
        ),
        helper.make_node("Conv", ["c2", "w3"], ["c3"], name="conv3"),
        helper.make_node("GlobalAveragePool", ["c3"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["g"], name="gemm", transB=1),
        helper.make_node("MatMul", ["g", "wm"], ["y"], name="matmul"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_stack",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 10, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of `model` that also outputs the named intermediate tensors (for onnxruntime)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    inferred = onnx.shape_inference.infer_shapes(copy)
    infos = {v.name: v for v in inferred.graph.value_info}
    present = {v.name for v in list(copy.graph.output) + list(copy.graph.input)}
    for name in names:
        if name not in present:
            copy.graph.output.append(infos[name])
    return copy


def single_layer(kind: str, seed: int = 0) -> onnx.ModelProto:
    """One quantizable node, its output the model output (x → node → y), so the IREE result
    can be checked bit for bit against a numpy model of the integer arithmetic.

    conv: 3→6, 3x3, stride 2, pad 1, bias    depthwise: 6, group 6, 3x3, pad 1, bias
    conv_s1: 3→6, 3x3, stride 1, pad 1, bias (7x7 = 49 output pixels: im2col pads the rows)
    grouped: 6→4, group 2, 3x3, pad 1, bias  gemm: 12→5, transB, bias   matmul: 12→5
    """
    rng = np.random.default_rng(seed)
    conv_in = {"conv": 3, "conv_s1": 3, "depthwise": 6, "grouped": 6}
    if kind in conv_in:
        c = conv_in[kind]
        f, group = {"conv": (6, 1), "conv_s1": (6, 1), "depthwise": (6, 6), "grouped": (4, 2)}[kind]
        stride = 2 if kind == "conv" else 1
        out_hw = 4 if stride == 2 else 7
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 7, 7])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, f, out_hw, out_hw])
        inits = [
            _init("w", rng.standard_normal((f, c // group, 3, 3)) * 0.4),
            _init("b", rng.standard_normal(f) * 0.2),
        ]
        node = helper.make_node(
            "Conv",
            ["x", "w", "b"],
            ["y"],
            name=kind,
            group=group,
            pads=[1, 1, 1, 1],
            strides=[stride, stride],
        )
    else:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 12])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])
        if kind == "gemm":
            inits = [
                _init("w", rng.standard_normal((5, 12)) * 0.3),
                _init("b", rng.standard_normal(5) * 0.2),
            ]
            node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name=kind, transB=1)
        else:
            inits = [_init("w", rng.standard_normal((12, 5)) * 0.3)]
            node = helper.make_node("MatMul", ["x", "w"], ["y"], name=kind)
    graph = helper.make_graph([node], kind, [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model

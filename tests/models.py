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


def tiny_encoder(seed: int = 0, vocab: int = 40, dim: int = 16, heads: int = 2) -> onnx.ModelProto:
    """A BERT-style sentence encoder, one layer, dynamic [batch, seq] int64 token inputs:

    input_ids ─ Gather(embeddings) ─ LayerNorm ─┬ MatMul q ┐   (each MatMul: 3-D x 2-D weight,
                                                ├ MatMul k ┴ QKᵀ/√d + mask ─ Softmax ─┐  + bias)
                                                └ MatMul v ───────────────── attn·V ─┴ MatMul o
      ─ + residual ─ LayerNorm ─ MatMul up ─ GELU (Erf) ─ MatMul down ─ + residual ─ LayerNorm
      ─ masked mean over the sequence (attention_mask) ─ pooled [batch, dim]
    Outputs: the token states [batch, seq, dim] and the pooled embedding [batch, dim].
    """
    rng = np.random.default_rng(seed)
    hd = dim // heads
    inits = [
        _init("emb", rng.standard_normal((vocab, dim)) * 0.5),
        _init("ln_g", 1 + 0.1 * rng.standard_normal(dim)),
        _init("ln_b", 0.1 * rng.standard_normal(dim)),
        _init("scale", np.array(1 / np.sqrt(hd))),
        _init("half", np.array(0.5)),
        _init("one", np.array(1.0)),
        _init("sqrt2", np.array(np.sqrt(2.0))),
        _init("neg", np.array(-1e4)),
        numpy_helper.from_array(np.array([0, 0, heads, hd], np.int64), "heads_shape"),
        numpy_helper.from_array(np.array([0, 0, dim], np.int64), "merge_shape"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"),
    ]
    for name, shape in (("q", (dim, dim)), ("k", (dim, dim)), ("v", (dim, dim)), ("o", (dim, dim)),
                        ("up", (dim, 2 * dim)), ("down", (2 * dim, dim))):  # fmt: skip
        inits.append(_init(f"w_{name}", rng.standard_normal(shape) / np.sqrt(shape[0])))
        inits.append(_init(f"b_{name}", 0.1 * rng.standard_normal(shape[1])))
    n = helper.make_node
    nodes = [
        n("Gather", ["emb", "input_ids"], ["h0"], name="embed"),
        n("LayerNormalization", ["h0", "ln_g", "ln_b"], ["h1"], name="ln0", axis=-1),
    ]

    def linear(x: str, w: str, out: str) -> None:
        nodes.append(n("MatMul", [x, f"w_{w}"], [f"{out}_mm"], name=f"{w}/MatMul"))
        nodes.append(n("Add", [f"b_{w}", f"{out}_mm"], [out], name=f"{w}/Add"))

    for w in ("q", "k", "v"):
        linear("h1", w, w)
        nodes.append(n("Reshape", [w, "heads_shape"], [f"{w}4"], name=f"{w}/split"))
        perm = [0, 2, 3, 1] if w == "k" else [0, 2, 1, 3]
        nodes.append(n("Transpose", [f"{w}4"], [f"{w}t"], name=f"{w}/T", perm=perm))
    nodes += [
        n("MatMul", ["qt", "kt"], ["s0"], name="attn/QK"),
        n("Mul", ["s0", "scale"], ["s1"], name="attn/scale"),
        n("Cast", ["attention_mask"], ["mf"], name="mask/cast", to=TensorProto.FLOAT),
        n("Unsqueeze", ["mf", "axes12"], ["m4"], name="mask/unsqueeze"),
        n("Sub", ["one", "m4"], ["m5"], name="mask/invert"),
        n("Mul", ["m5", "neg"], ["m6"], name="mask/neg"),
        n("Add", ["s1", "m6"], ["s2"], name="attn/mask"),
        n("Softmax", ["s2"], ["p"], name="attn/softmax", axis=-1),
        n("MatMul", ["p", "vt"], ["c4"], name="attn/PV"),
        n("Transpose", ["c4"], ["c3"], name="attn/T", perm=[0, 2, 1, 3]),
        n("Reshape", ["c3", "merge_shape"], ["c"], name="attn/merge"),
    ]
    linear("c", "o", "a")
    nodes += [
        n("Add", ["h1", "a"], ["r1"], name="res1"),
        n("LayerNormalization", ["r1", "ln_g", "ln_b"], ["h2"], name="ln1", axis=-1),
    ]
    linear("h2", "up", "u")
    nodes += [
        n("Div", ["u", "sqrt2"], ["g0"], name="gelu/div"),
        n("Erf", ["g0"], ["g1"], name="gelu/erf"),
        n("Add", ["g1", "one"], ["g2"], name="gelu/add"),
        n("Mul", ["u", "g2"], ["g3"], name="gelu/mul"),
        n("Mul", ["g3", "half"], ["g"], name="gelu/half"),
    ]
    linear("g", "down", "d")
    nodes += [
        n("Add", ["h2", "d"], ["r2"], name="res2"),
        n("LayerNormalization", ["r2", "ln_g", "ln_b"], ["tokens"], name="ln2", axis=-1),
        n("Unsqueeze", ["mf", "axes2"], ["m3"], name="pool/unsqueeze"),
        n("Mul", ["tokens", "m3"], ["tm"], name="pool/mul"),
        n("ReduceSum", ["tm", "axis1"], ["ts"], name="pool/sum", keepdims=0),
        n("ReduceSum", ["m3", "axis1"], ["cnt"], name="pool/count", keepdims=0),
        n("Div", ["ts", "cnt"], ["pooled"], name="pool/mean"),
    ]
    inits.append(numpy_helper.from_array(np.array([2], np.int64), "axes2"))
    ints = [
        helper.make_tensor_value_info(x, TensorProto.INT64, ["batch", "seq"])
        for x in ("input_ids", "attention_mask")
    ]
    outs = [
        helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "seq", dim]),
        helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["pooled_batch", dim]),
    ]
    graph = helper.make_graph(nodes, "tiny_encoder", ints, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model

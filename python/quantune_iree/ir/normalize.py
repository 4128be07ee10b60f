"""Rewrites of the ONNX graph before import that change no value, only how IREE's importer lowers
it, so every weight contraction reaches the layer table as a layer with a constant weight.

A MatMul of a rank-3+ activation by a 2-D constant weight (a transformer's projections,
X[B, S, K] · W[K, N]) imports as a `linalg.batch_matmul` on a broadcast copy of the weight: no
constant weight for the layer table, and a batched contraction IREE 3.13's data-tiled CPU
pipeline cannot build. Flattened to Reshape(X, [B·S, K]) · W then Reshape back to [B, S, N], it
imports as a `linalg.matmul` on W itself, quantized per output channel like a Gemm. The MatMul
keeps its node name (the layer's name in plans and reports); the reshapes get derived names.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    return {
        value.name: len(value.type.tensor_type.shape.dim)
        for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape")
    }


def flatten_weight_matmuls(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with each MatMul of a rank-3+ activation by a 2-D initializer flattened
    to 2-D; and how many were. The leading dims are read back with Shape/Slice, so the batch size
    need not be known to ONNX: it folds away once the inputs' static shapes are lowered."""
    ranks = _ranks(model)
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        rank = ranks.get(node.input[0], 0) if node.op_type == "MatMul" else 0
        w = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w) != 2 or rank < 3:
            nodes.append(node)
            continue
        name = node.name or node.output[0]
        k = f"{name}/quantune_"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array([-1, w[0]], np.int64), k + "2d_shape"),
                numpy_helper.from_array(np.array([0], np.int64), k + "start"),
                numpy_helper.from_array(np.array([-1], np.int64), k + "end"),
                numpy_helper.from_array(np.array([w[1]], np.int64), k + "n"),
            ]
        )
        make = onnx.helper.make_node
        nodes += [
            make("Reshape", [node.input[0], k + "2d_shape"], [k + "2d_in"], name=k + "flatten"),
            make("MatMul", [k + "2d_in", node.input[1]], [k + "2d_out"], name=name),
            make("Shape", [node.input[0]], [k + "in_shape"], name=k + "shape"),
            make("Slice", [k + "in_shape", k + "start", k + "end"], [k + "lead"], name=k + "lead"),
            make("Concat", [k + "lead", k + "n"], [k + "nd_shape"], name=k + "concat", axis=0),
            make("Reshape", [k + "2d_out", k + "nd_shape"], [node.output[0]], name=k + "unflatten"),
        ]
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return out, count

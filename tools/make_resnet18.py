"""A ResNet18-shaped ONNX model with seeded random weights (He init, batch norms folded), for
speed benchmarks where accuracy does not matter: opset 17, input 1x3x224x224, 1000 logits.

Usage: python tools/make_resnet18.py OUT.onnx [--seed 0]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def resnet18(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []

    def conv(x: str, name: str, cin: int, cout: int, k: int, stride: int, relu: bool) -> str:
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k))).astype(np.float32)
        b = (0.1 * rng.standard_normal(cout)).astype(np.float32)
        inits.extend(
            [
                numpy_helper.from_array(w, f"{name}.weight"),
                numpy_helper.from_array(b, f"{name}.bias"),
            ]
        )
        p = k // 2
        out = f"{name}/Conv_output_0"
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.weight", f"{name}.bias"],
                [out],
                name=f"{name}/Conv",
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[p, p, p, p],
            )
        )
        if relu:
            nodes.append(
                helper.make_node("Relu", [out], [f"{name}/Relu_output_0"], name=f"{name}/Relu")
            )
            out = f"{name}/Relu_output_0"
        return out

    x = conv("input", "/conv1", 3, 64, 7, 2, True)
    nodes.append(
        helper.make_node(
            "MaxPool",
            [x],
            ["/maxpool/MaxPool_output_0"],
            name="/maxpool/MaxPool",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        )
    )
    x = "/maxpool/MaxPool_output_0"
    cin = 64
    for stage, cout in enumerate([64, 128, 256, 512], start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            name = f"/layer{stage}/layer{stage}.{block}"
            y = conv(x, f"{name}/conv1", cin, cout, 3, stride, True)
            y = conv(y, f"{name}/conv2", cout, cout, 3, 1, False)
            skip = x
            if stride != 1 or cin != cout:
                skip = conv(x, f"{name}/downsample/downsample.0", cin, cout, 1, stride, False)
            nodes.append(
                helper.make_node("Add", [y, skip], [f"{name}/Add_output_0"], name=f"{name}/Add")
            )
            nodes.append(
                helper.make_node(
                    "Relu", [f"{name}/Add_output_0"], [f"{name}/Relu_output_0"], name=f"{name}/Relu"
                )
            )
            x, cin = f"{name}/Relu_output_0", cout
    nodes.append(
        helper.make_node(
            "GlobalAveragePool", [x], ["/avgpool_output_0"], name="/avgpool/GlobalAveragePool"
        )
    )
    nodes.append(
        helper.make_node(
            "Flatten", ["/avgpool_output_0"], ["/Flatten_output_0"], name="/Flatten", axis=1
        )
    )
    w = (rng.standard_normal((1000, 512)) / np.sqrt(512)).astype(np.float32)
    inits.extend(
        [
            numpy_helper.from_array(w, "fc.weight"),
            numpy_helper.from_array(np.zeros(1000, np.float32), "fc.bias"),
        ]
    )
    nodes.append(
        helper.make_node(
            "Gemm",
            ["/Flatten_output_0", "fc.weight", "fc.bias"],
            ["logits"],
            name="/fc/Gemm",
            transB=1,
        )
    )
    graph = helper.make_graph(
        nodes,
        "resnet18",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    onnx.save(resnet18(args.seed), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

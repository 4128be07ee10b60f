"""The layer table: every quantizable op of an imported model, as frozen records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import ir_session, native
from .importer import ImportedModel

_FLOAT_DTYPES = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "bf16": None}


@dataclass(frozen=True)
class Layer:
    """One quantizable op. `id` is its position in program order, stable for a given model."""

    id: int
    node: str  # ONNX node name ('' when the location carries none)
    onnx_op: str  # ONNX op type of that node ('' when unknown)
    kind: str  # conv | depthwise_conv | grouped_conv | matmul | batch_matmul
    op_name: str  # linalg op, e.g. linalg.conv_2d_nchw_fchw
    precision: str  # fp32, or int8 once quantune-quantize-layers rewrote it
    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]  # as the linalg op consumes it
    output_shape: tuple[int, ...]
    weight_is_constant: bool
    # Output channels: their dims in the weight and in the op's result, paired in order.
    weight_channel_dims: tuple[int, ...]
    output_channel_dims: tuple[int, ...]
    # The weight in the op's operand layout, when it is a readable constant.
    weight: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return self.node or f"layer{self.id}"


def _weight_array(native_layer: Any) -> np.ndarray | None:
    raw = native_layer.weight_bytes()
    dtype = _FLOAT_DTYPES.get(native_layer.element_type)
    if raw is None or dtype is None:
        return None
    const_shape = tuple(native_layer.weight_const_shape)
    flat = np.frombuffer(raw, dtype=dtype)
    array = (
        np.full(const_shape, flat[0], dtype=dtype) if flat.size == 1 else flat.reshape(const_shape)
    )
    for kind, value in native_layer.weight_steps:
        array = array.transpose(value) if kind == "transpose" else array.reshape(value)
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def from_native(native_layers: list[Any], node_ops: Mapping[str, str]) -> tuple[Layer, ...]:
    return tuple(
        Layer(
            id=nl.id,
            node=nl.node,
            onnx_op=node_ops.get(nl.node, ""),
            kind=nl.kind,
            op_name=nl.op_name,
            precision=nl.precision,
            input_shape=tuple(nl.input_shape),
            weight_shape=tuple(nl.weight_shape),
            output_shape=tuple(nl.output_shape),
            weight_is_constant=nl.weight_is_constant,
            weight_channel_dims=tuple(nl.weight_channel_dims),
            output_channel_dims=tuple(nl.output_channel_dims),
            weight=_weight_array(nl),
        )
        for nl in native_layers
    )


def layer_table(model: ImportedModel) -> tuple[Layer, ...]:
    """Quantizable layers of `model`, in program order."""
    session = ir_session.new_session()
    module = ir_session.parse_module(session, model.bytecode)
    return from_native(native.layer_table(module), model.node_ops)

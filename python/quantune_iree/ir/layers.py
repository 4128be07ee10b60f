"""The layer table: every quantizable op of an imported model, as frozen records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..model.graph import ImportedModel
from ..model.layer import ConvGeometry, Layer
from . import native
from . import session as ir_session

_FLOAT_DTYPES = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "bf16": None}


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


def from_native(
    native_layers: list[Any],
    node_ops: Mapping[str, str],
    geometry: Mapping[str, ConvGeometry] | None = None,
) -> tuple[Layer, ...]:
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
            geometry=(geometry or {}).get(nl.node),
        )
        for nl in native_layers
    )


def layer_table(model: ImportedModel) -> tuple[Layer, ...]:
    """Quantizable layers of `model`, in program order."""
    session = ir_session.new_session()
    module = ir_session.parse_module(session, model.bytecode)
    return from_native(native.layer_table(module), model.node_ops, model.conv_geometry)

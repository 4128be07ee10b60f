"""A quantizable layer of an imported model, as the layer table reports it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Layer kinds, as the native layer table names them.
KINDS = ("conv", "depthwise_conv", "grouped_conv", "matmul", "batch_matmul")
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class ConvGeometry:
    """An ONNX Conv's sliding window over its (unpadded) input, as its attributes give it."""

    strides: tuple[int, ...]
    pads: tuple[int, ...]  # begins of each spatial dim, then ends (ONNX order)
    dilations: tuple[int, ...]
    group: int


@dataclass(frozen=True)
class Layer:
    """One quantizable op. `id` is its position in program order, stable for a given model."""

    id: int
    node: str  # ONNX node name ('' when the location carries none)
    onnx_op: str  # ONNX op type of that node ('' when unknown)
    kind: str  # one of KINDS
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
    # The ONNX Conv's window (None for matmuls, and for convs of MLIR input).
    geometry: ConvGeometry | None = None

    @property
    def label(self) -> str:
        return self.node or f"layer{self.id}"

    @property
    def activation_matmul(self) -> bool:
        """A float matmul of two activations (attention's Q·Kᵀ, attention·V): both operands
        are quantized at run time, the second with a symmetric scale of its own."""
        return (
            self.precision == "fp32"
            and self.kind in ("matmul", "batch_matmul")
            and not self.weight_is_constant
        )

    @property
    def unquantizable_reason(self) -> str:
        """'' when the layer can become int8, else why not."""
        if self.precision != "fp32":
            return "already quantized"
        if self.activation_matmul:
            return ""
        if self.weight is None or self.weight.dtype != np.float32:
            return "weight is not an f32 constant"
        return ""

"""An imported model as the stages see it: its MLIR at IREE's input phase (bytecode) and its
interface."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .layer import ConvGeometry
from .plan import Rescaling


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: ONNX name, static shape and numpy dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class ImportedModel:
    """A model lowered to IREE's `input` phase, as MLIR bytecode plus what is known about it."""

    path: str
    sha256: str
    bytecode: bytes
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    node_ops: Mapping[str, str]  # ONNX node name → op type
    function: str  # the entry function (named after the ONNX graph)
    notes: tuple[str, ...] = ()  # what the import assumed (e.g. a dynamic batch taken as 1)
    # Conv nodes' ONNX geometry by node name (empty for MLIR input, which has no ONNX graph).
    conv_geometry: Mapping[str, ConvGeometry] = field(default_factory=dict)
    # Cross-layer equalization and input smoothing applied to the ONNX graph before import.
    equalization: tuple[Rescaling, ...] = ()

    @property
    def primary_output(self) -> int:
        """The output the analysis judges a build by: the smallest floating-point one (a
        classifier's logits; a sentence encoder's pooled embedding rather than its per-token
        states or the token ids it passes through); the first when none is float."""
        floats = [i for i, o in enumerate(self.outputs) if o.dtype.startswith(("float", "bfloat"))]
        if not floats:
            return 0
        return min(floats, key=lambda i: (math.prod(self.outputs[i].shape), i))

"""For MLIR toolchains: quantune's passes on MLIR instead of an ONNX file.

- `opt(data, ...)`: MLIR bytes in (what `iree-import-onnx` or iree-turbine write, or IREE
  input-phase MLIR; text or bytecode), a plan's int8 layers rewritten into integer compute in
  the target's integer forms and/or taps added, MLIR out for `iree-compile --compile-from=input`
  with `iree_flags(target)`. `quantune-iree opt` is its command line.
- `insert_taps(module, ...)` and `quantize_layers(module, plan, ...)`: the same passes in place
  on an `iree.compiler.ir.Module` already at IREE's input phase.

Layers are identified as `ir.mlir_input` says: by op order, and by ONNX node name where the
module's locations carry one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .backend.engine import Engine
from .backend.targets import get_target, layer_form
from .errors import QuantuneError
from .ir import native
from .ir.apply_plan import quantize_module
from .ir.layers import from_native
from .ir.mlir_input import POSITIONAL, import_mlir
from .ir.taps import TapMap
from .model.layer import Layer
from .model.plan import Plan
from .model.target import Target


def match_plan(plan: Plan, layers: Sequence[Layer], sha256: str, source: str) -> Plan:
    """`plan` (made from an ONNX file) for this module: the same number of layers, in the same
    order, with the same node names wherever the module has names; weights must be readable
    constants for every int8 layer. A plan that equalizes conv pairs or smooths inputs is
    refused: that rewrites the ONNX graph before import, which MLIR input has no trace of."""
    if plan.equalization:
        raise QuantuneError(
            f"{source}: the plan rescales {len(plan.equalization)} conv pairs or layer inputs, "
            "a rewrite of the ONNX graph this MLIR does not carry: make the plan with "
            "--equalization none --smoothing none, or apply it to the ONNX model with "
            "`quantune-iree compile --plan`",
            file=source,
        )
    if len(plan.layers) != len(layers):
        raise QuantuneError(
            f"{source}: the plan has {len(plan.layers)} layers, the module {len(layers)}",
            file=source,
        )
    for lp, layer in zip(plan.layers, layers, strict=True):
        named = layer.node and not layer.node.startswith(POSITIONAL)
        if named and lp.node != layer.node:
            raise QuantuneError(
                f"{source}: layer {layer.id} is '{lp.node}' in the plan but '{layer.node}' "
                "in the module",
                file=source,
            )
        if lp.precision == "int8" and layer.unquantizable_reason:
            raise QuantuneError(
                f"{source}: layer {layer.id} ('{lp.node}') cannot be int8: "
                f"{layer.unquantizable_reason}",
                file=source,
            )
    return dataclasses.replace(plan, model_sha256=sha256)


def iree_flags(target: Target) -> list[str]:
    """What `iree-compile` needs for opt's output: the input phase, and the target's flags."""
    return ["--compile-from=input", *target.flags]


def opt(
    data: bytes,
    plan: Plan | None = None,
    *,
    target: Target | None = None,
    taps: Sequence[int] | None = None,
    source: str = "<stdin>",
) -> tuple[bytes, TapMap | None]:
    """The module with `plan` applied in `target`'s integer forms (host when None) and, when
    `taps` is given (layer ids; [] for all), those layers tapped; returns input-phase MLIR
    bytecode and where the taps are."""
    model = import_mlir(data, source)
    engine = Engine(model, target or get_target("host"))
    if plan is not None:
        plan = match_plan(plan, engine.layers, model.sha256, source)
    ids = None if taps is None else (list(taps) or [layer.id for layer in engine.layers])
    lowered = engine.lower(plan, taps=ids)
    return lowered.bytecode, lowered.taps


def module_layers(module: Any) -> tuple[Layer, ...]:
    """The quantizable layers of an input-phase `iree.compiler.ir.Module`, in program order."""
    return from_native(native.layer_table(module), {})


def insert_taps(module: Any, layer_ids: Sequence[int] | None = None) -> Any:
    """quantune-insert-taps in place on an input-phase `iree.compiler.ir.Module`: the layers'
    inputs and outputs become extra results. Returns the native record of where they are."""
    result = native.insert_taps(module, layer_ids)
    native.verify(module)
    return result


def quantize_layers(module: Any, plan: Plan, target: Target | None = None) -> None:
    """quantune-quantize-layers in place on an input-phase `iree.compiler.ir.Module`: the plan's
    int8 layers become integer compute in `target`'s integer forms (host when None)."""
    target = target or get_target("host")
    layers = module_layers(module)
    match_plan(plan, layers, plan.model_sha256, "the module")
    forms = {layer.id: layer_form(target, layer) for layer in layers}
    quantize_module(module, plan, forms)


__all__ = ["insert_taps", "iree_flags", "match_plan", "module_layers", "opt", "quantize_layers"]

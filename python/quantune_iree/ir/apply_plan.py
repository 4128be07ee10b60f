"""Plan → IR: runs quantune-quantize-layers on the model's input-phase module, each int8 layer in
the integer form its target wants."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import QuantuneError
from ..model.graph import ImportedModel
from ..model.plan import Plan
from ..model.target import IntegerForm
from . import native
from . import session as ir_session


def apply_plan(
    model: ImportedModel, plan: Plan, forms: Mapping[int, IntegerForm] | None = None
) -> bytes:
    """Input-phase bytecode with the plan's int8 layers rewritten into integer compute, in
    `forms[layer_id]` (the plain named i8 form for layers not listed)."""
    if plan.model_sha256 != model.sha256:
        raise QuantuneError(
            f"the plan was made for a model with sha256 {plan.model_sha256[:12]}…, "
            f"not {model.path} ({model.sha256[:12]}…)",
            file=model.path,
        )
    session = ir_session.new_session()
    module = ir_session.parse_module(session, model.bytecode)
    quantize_module(module, plan, forms)
    return ir_session.to_bytecode(module)


def quantize_module(
    module: object, plan: Plan, forms: Mapping[int, IntegerForm] | None = None
) -> None:
    """quantune-quantize-layers in place on an input-phase module (an iree.compiler.ir Module),
    each int8 layer of `plan` in `forms[layer_id]`."""
    records = []
    for lp in plan.int8_layers:
        if lp.activation is None:
            continue
        form = (forms or {}).get(lp.layer_id, IntegerForm())
        records.append(
            native.LayerQuantization(
                lp.layer_id,
                lp.activation.scale,
                lp.activation.zero_point,
                list(lp.weight_scales),
                form.storage,
                form.contraction,
                form.reciprocal,
                list(lp.bias_correction),
                b""
                if lp.weight_offsets is None
                else np.asarray(lp.weight_offsets, np.int8).tobytes(),
            )
        )
    if records:
        native.quantize_layers(module, records)
    native.verify(module)

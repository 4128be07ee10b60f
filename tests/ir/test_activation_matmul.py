"""Activation x activation matmuls (attention's Q·Kᵀ and attention·V) as integer compute: both
operands quantized at run time, bit-exact against a numpy model, in every stored type."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from quantune_iree.algo.quantization import quantize_activation
from quantune_iree.backend.compile import compile_vmfb
from quantune_iree.backend.runtime import Runner
from quantune_iree.backend.targets import get_target
from quantune_iree.errors import QuantuneError
from quantune_iree.ir.apply_plan import apply_plan
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.model.plan import ActivationQuant, LayerPlan, Plan, QuantConfig
from quantune_iree.model.target import IntegerForm

SHAPES = {  # lhs, rhs: 4-D (imported with reshapes around a batch_matmul), 3-D, 2-D
    "4d": ((2, 3, 5, 4), (2, 3, 4, 6)),
    "3d": ((3, 5, 4), (3, 4, 6)),
    "2d": ((5, 4), (4, 6)),
}


def _model(path: str, lhs: tuple[int, ...], rhs: tuple[int, ...]) -> None:
    out = (*lhs[:-1], rhs[-1])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"], name="attn/MatMul")],
        "amm",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, lhs),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, rhs),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _reference(a: np.ndarray, b: np.ndarray, act: ActivationQuant, sb: float) -> np.ndarray:
    qa = quantize_activation(a, act).astype(np.int64) - act.zero_point
    qb = np.clip(np.rint(b / np.float32(sb)), -127, 127).astype(np.int64)
    return (qa @ qb).astype(np.float32) * (np.float32(act.scale) * np.float32(sb))


# Every stored type on the 4-D case (reshapes around a batch_matmul); i8 on the others.
CASES = [("4d", s) for s in ("i8", "u8", "i16", "i32")] + [("3d", "i8"), ("2d", "i8")]


@pytest.mark.parametrize(("shape", "storage"), CASES)
def test_activation_matmul_is_bit_exact(shape: str, storage: str, tmp_path) -> None:
    lhs, rhs = SHAPES[shape]
    path = str(tmp_path / "amm.onnx")
    _model(path, lhs, rhs)
    model = import_onnx(path)
    (layer,) = layer_table(model)
    assert layer.activation_matmul and not layer.unquantizable_reason
    act, sb = ActivationQuant(0.021, -9), 0.017
    plan = Plan(model.sha256, QuantConfig(), (LayerPlan(0, layer.node, "int8", act, (sb,)),))
    form = IntegerForm(storage, "named", False)
    bytecode = apply_plan(model, plan, {0: form})
    (rewritten,) = layer_table(replace(model, bytecode=bytecode))
    assert rewritten.precision == "int8" and rewritten.input_shape == layer.input_shape
    runner = Runner(compile_vmfb(bytecode, get_target("host", preset="iree")), "amm")
    rng = np.random.default_rng(5)
    for scale in (1.0, 3.0):  # the second one clamps on both operands
        a = (rng.standard_normal(lhs) * scale).astype(np.float32)
        b = (rng.standard_normal(rhs) * scale).astype(np.float32)
        got = runner([a, b])[0]
        want = _reference(a, b, act, sb)
        assert np.array_equal(got, want), f"max diff {np.abs(got - want).max()}"


def test_activation_matmul_needs_one_scale_for_its_second_operand(tmp_path) -> None:
    path = str(tmp_path / "amm.onnx")
    _model(path, *SHAPES["3d"])
    model = import_onnx(path)
    act = ActivationQuant(0.02, 0)
    for scales in [(), (0.1, 0.2), (-1.0,)]:
        plan = Plan(
            model.sha256, QuantConfig(), (LayerPlan(0, "attn/MatMul", "int8", act, scales),)
        )
        with pytest.raises(QuantuneError, match="one positive scale for its second operand"):
            apply_plan(model, plan)

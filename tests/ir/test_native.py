"""The C-API glue: what the native module accepts, and its failure paths."""

from __future__ import annotations

import pytest
from quantune_iree.errors import QuantuneError
from quantune_iree.ir import native
from quantune_iree.ir import session as ir_session

TWO_FUNCS = """
func.func @a(%x: tensor<2x2xf32>, %w: tensor<2x2xf32>) -> tensor<2x2xf32> {
  %e = tensor.empty() : tensor<2x2xf32>
  %0 = linalg.matmul ins(%x, %w : tensor<2x2xf32>, tensor<2x2xf32>) outs(%e : tensor<2x2xf32>) -> tensor<2x2xf32>
  return %0 : tensor<2x2xf32>
}
func.func @b(%x: tensor<2x2xf32>, %w: tensor<2x2xf32>) -> tensor<2x2xf32> {
  %e = tensor.empty() : tensor<2x2xf32>
  %0 = linalg.matmul ins(%x, %w : tensor<2x2xf32>, tensor<2x2xf32>) outs(%e : tensor<2x2xf32>) -> tensor<2x2xf32>
  return %0 : tensor<2x2xf32>
}
"""


def _parse(text: str):  # noqa: ANN202 - ir.Module
    # The session hands its context to Python, and the module keeps that context alive.
    return ir_session.parse_module(ir_session.new_session(), text.encode())


def test_layer_table_accepts_module_and_operation() -> None:
    module = _parse(TWO_FUNCS)
    by_module = native.layer_table(module)
    by_op = native.layer_table(module.operation)
    assert [lay.kind for lay in by_module] == [lay.kind for lay in by_op] == ["matmul", "matmul"]
    # A weight that is a function argument is not a constant.
    assert not by_module[0].weight_is_constant and by_module[0].weight_bytes() is None


def test_non_mlir_object_is_refused() -> None:
    with pytest.raises(QuantuneError, match="expected an iree.compiler.ir Module or Operation"):
        native.layer_table(object())


def test_non_module_operation_is_refused() -> None:
    module = _parse(TWO_FUNCS)
    func = module.body.operations[0]
    with pytest.raises(QuantuneError, match="expected a builtin.module, got func.func"):
        native.layer_table(func.operation)


def test_taps_across_functions_fail_and_name_them() -> None:
    module = _parse(TWO_FUNCS)
    with pytest.raises(QuantuneError, match=r"spread over several functions \('a' and 'b'\)"):
        native.insert_taps(module)
    # One function at a time is fine.
    result = native.insert_taps(module, [1])
    assert result.function == "b" and result.num_original_results == 1
    native.verify(module)


def test_empty_choice_is_refused() -> None:
    with pytest.raises(QuantuneError, match="no layer was chosen to tap"):
        native.insert_taps(_parse(TWO_FUNCS), [])


def test_verify_reports_diagnostics() -> None:
    module = _parse(TWO_FUNCS)
    ret = module.body.operations[0].regions[0].blocks[0].operations[2]
    ret.operation.erase()  # a function without a terminator
    with pytest.raises(QuantuneError, match="module does not verify"):
        native.verify(module)


def test_version_is_the_pinned_one() -> None:
    assert native._native.IREE_COMPILER_VERSION == "3.13.0"

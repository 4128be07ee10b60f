"""ONNX → input-phase MLIR: what survives the import, and how bad models are refused."""

from __future__ import annotations

import onnx
import pytest
from conftest import shared_model
from onnx import TensorProto, helper
from quantune_iree.errors import QuantuneError
from quantune_iree.ir.importer import import_onnx


def test_import_keeps_io_specs_and_node_names(conv_stack_model) -> None:
    m = conv_stack_model
    assert [(s.name, s.shape, s.dtype) for s in m.inputs] == [("x", (1, 4, 10, 10), "float32")]
    assert [(s.name, s.shape, s.dtype) for s in m.outputs] == [("y", (1, 5), "float32")]
    assert m.node_ops["gemm"] == "Gemm"
    assert len(m.sha256) == 64
    assert m.bytecode[:4] == b"ML\xefR"  # MLIR bytecode magic


def test_import_stops_at_input_phase_unfused(conv_stack_model) -> None:
    from quantune_iree.ir import session as ir_session

    session = ir_session.new_session()
    text = str(ir_session.parse_module(session, conv_stack_model.bytecode))
    assert "util.func public @conv_stack" in text
    assert "linalg.conv_2d_nchw_fchw" in text and "linalg.matmul" in text
    assert "flow.dispatch" not in text and "torch." not in text


def test_missing_file(tmp_path) -> None:
    with pytest.raises(QuantuneError, match=r"nope\.onnx: no such file"):
        import_onnx(str(tmp_path / "nope.onnx"))


@pytest.mark.parametrize(
    "payload, message",
    [(b"", "file is empty"), (b"\x00\x01garbage bytes\xff" * 10, "not an ONNX model")],
)
def test_non_onnx_bytes(tmp_path, payload: bytes, message: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(payload)
    with pytest.raises(QuantuneError, match=message):
        import_onnx(str(path))


def _single_node_model(path, op: str, domain: str = "", out_shape=(4, 4)) -> str:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))
    node = helper.make_node(op, ["x"], ["y"], name="the_node", domain=domain)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=opsets)
    onnx.save(model, str(path))
    return str(path)


def test_unsupported_op_names_node_and_op(tmp_path) -> None:
    path = _single_node_model(tmp_path / "custom.onnx", "FrobnicateOp", domain="com.example")
    with pytest.raises(
        QuantuneError, match=r"cannot lower ONNX node 'the_node' \(op FrobnicateOp\)"
    ):
        import_onnx(path)


def _dynamic(tmp_path, dims: list) -> str:  # noqa: ANN001
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    return str(path)


def test_an_unknown_batch_is_taken_as_1_with_a_note(tmp_path) -> None:
    """NHWC too: the note (and any hint) shows the model's own shape, never a stock one."""
    imported = import_onnx(_dynamic(tmp_path, ["batch", 224, 224, 3]))
    assert imported.inputs[0].shape == (1, 224, 224, 3)
    assert imported.outputs[0].shape == (1, 224, 224, 3)
    assert imported.notes == (
        "input 'x': unknown batch dimension 'batch' taken as 1 (--input-shape x=1,224,224,3 "
        "is the same; change it there)",
    )
    imported = import_onnx(_dynamic(tmp_path, ["batch", 4]), {"x": (2, 4)})
    assert imported.inputs[0].shape == (2, 4) and imported.outputs[0].shape == (2, 4)
    assert imported.notes == ()


def test_other_dynamic_dimensions_need_a_shape(tmp_path) -> None:
    with pytest.raises(
        QuantuneError,
        match=r"'x' has dynamic shape \[1, 'h', 'w', 3\]; .*--input-shape x=1,<h>,<w>,3 ",
    ):
        import_onnx(_dynamic(tmp_path, [1, "h", "w", 3]))


def test_real_models_import() -> None:
    for name in ("mobilenet_v2.onnx", "efficientnet_lite0.onnx"):
        m = import_onnx(shared_model(name))
        assert m.inputs[0].shape == (1, 3, 224, 224)
        assert m.outputs[0].shape == (1, 1000)


def test_outputs_onnx_leaves_dynamic_take_the_lowered_static_shapes(tmp_path, monkeypatch) -> None:
    """An exported encoder's batch size can be lost to ONNX's inference (mask arithmetic through
    Shape/Expand) yet be static once lowered: the lowered entry function's result types count."""
    from models import tiny_encoder
    from quantune_iree.ir import importer

    path = tmp_path / "enc.onnx"
    onnx.save(tiny_encoder(), str(path))
    shapes = {"input_ids": [1, 5], "attention_mask": [1, 5]}
    monkeypatch.setattr(
        importer, "_is_static", lambda value: value.name not in ("pooled", "tokens")
    )
    model = import_onnx(str(path), shapes)
    assert [(o.name, o.shape, o.dtype) for o in model.outputs] == [
        ("tokens", (1, 5, 16), "float32"),
        ("pooled", (1, 16), "float32"),
    ]
    assert model.primary_output == 1  # the pooled embedding, not the per-token states


def test_entry_function_reads_integer_tensor_types() -> None:
    from iree.compiler import ir
    from quantune_iree.ir import session as ir_session

    text = (
        "func.func @f(%a: tensor<1x64xi64>, %b: tensor<f32>) -> tensor<1x64xi64> {\n"
        "  return %a : tensor<1x64xi64>\n}"
    )
    session = ir_session.new_session(())
    with session.context:
        name, ins, outs = ir_session.entry_function(ir.Module.parse(text))
    assert name == "f"
    assert [(s.shape, s.dtype) for s in ins] == [((1, 64), "int64"), ((), "float32")]
    assert outs[0].shape == (1, 64)

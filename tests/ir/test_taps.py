"""Taps: each equals onnxruntime's value of the same ONNX tensor; the model output is unchanged."""

from __future__ import annotations

import models
import numpy as np
import onnxruntime as ort
import pytest
from conftest import shared_model
from quantune_iree.backend.compile import compile_vmfb
from quantune_iree.backend.runtime import Runner
from quantune_iree.backend.targets import get_target
from quantune_iree.errors import QuantuneError
from quantune_iree.ir.importer import import_onnx
from quantune_iree.ir.layers import layer_table
from quantune_iree.ir.taps import tap_bytecode


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


@pytest.fixture(scope="module")
def tapped_runner(conv_stack_model):  # noqa: ANN201
    tapped = tap_bytecode(conv_stack_model.bytecode)
    vmfb = compile_vmfb(tapped.bytecode, get_target("host"))
    return tapped, Runner(vmfb, tapped.taps.function)


def test_each_tap_equals_onnxruntime_intermediate(conv_stack_model, tapped_runner) -> None:
    tapped, runner = tapped_runner
    onnx_model = models.conv_stack()
    nodes = {n.name: n for n in onnx_model.graph.node}
    layers = layer_table(conv_stack_model)
    names = sorted(
        {t for lay in layers for t in (nodes[lay.node].input[0], nodes[lay.node].output[0])}
    )
    session = ort.InferenceSession(
        models.with_outputs(onnx_model, names).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    rng = np.random.default_rng(1)
    for _ in range(2):
        x = rng.standard_normal((1, 4, 10, 10)).astype(np.float32)
        want = dict(
            zip([o.name for o in session.get_outputs()], session.run(None, {"x": x}), strict=True)
        )
        want["x"] = x
        got = runner([x])
        for lay in layers:
            node = nodes[lay.node]
            for result, tensor in (
                (tapped.taps.input_result[lay.id], node.input[0]),
                (tapped.taps.output_result[lay.id], node.output[0]),
            ):
                assert got[result].shape == want[tensor].shape, (lay.node, tensor)
                assert _rel_err(got[result], want[tensor]) <= 1e-5, (lay.node, tensor)


def test_taps_are_deduplicated(tapped_runner) -> None:
    tapped, _ = tapped_runner
    taps = tapped.taps
    assert taps.num_original_results == 1
    # gconv2's output is conv3's input; gemm's output is matmul's input.
    assert taps.output_result[2] == taps.input_result[3]
    assert taps.output_result[4] == taps.input_result[5]
    assert taps.num_taps == 12 - 2
    assert set(taps.input_result.values()) | set(taps.output_result.values()) == set(
        taps.tap_results
    )


def test_taps_differ_between_inputs(tapped_runner) -> None:
    """Results are copied out of the runtime: a second call must not overwrite the first."""
    _, runner = tapped_runner
    a = runner([np.ones((1, 4, 10, 10), np.float32)])
    b = runner([-np.ones((1, 4, 10, 10), np.float32)])
    assert not np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], b[1])


def test_subset_of_layers(conv_stack_model) -> None:
    tapped = tap_bytecode(conv_stack_model.bytecode, [1, 4])
    assert sorted(tapped.taps.input_result) == [1, 4]
    assert tapped.taps.num_taps == 4


def test_unknown_layer_id_is_refused(conv_stack_model) -> None:
    with pytest.raises(QuantuneError, match="no layer with id 99 \\(module has 6 layers\\)"):
        tap_bytecode(conv_stack_model.bytecode, [99])


def _outputs_equal(model_path: str, inputs: list[np.ndarray]) -> None:
    model = import_onnx(model_path)
    host = get_target("host")
    plain = Runner(compile_vmfb(model.bytecode, host), model.function)
    tapped = tap_bytecode(model.bytecode)
    tapped_run = Runner(compile_vmfb(tapped.bytecode, host), tapped.taps.function)
    for x in inputs:
        want = plain([x])
        got = tapped_run([x])
        assert len(got) == len(want) + tapped.taps.num_taps
        for g, w in zip(got[: len(want)], want, strict=True):
            assert g.dtype == w.dtype and np.array_equal(g, w), "tapped output is not bit-identical"


def test_tapped_output_bit_identical_small(conv_stack_path) -> None:
    rng = np.random.default_rng(2)
    _outputs_equal(conv_stack_path, [rng.standard_normal((1, 4, 10, 10)).astype(np.float32)])


def test_tapped_output_bit_identical_mobilenet_v2() -> None:
    path = shared_model("mobilenet_v2.onnx")
    rng = np.random.default_rng(3)
    _outputs_equal(
        path, [rng.standard_normal((1, 3, 224, 224)).astype(np.float32) for _ in range(2)]
    )


def test_int8_im2col_layer_taps_have_the_layers_shapes(conv_stack_model) -> None:
    """An int8 conv in the im2col form with padded rows (10x10 = 100 pixels, padded to 104):
    its output tap is the layer's NCHW output after the padded rows are sliced off, and the
    model output is unchanged by tapping."""
    from quantune_iree.ir.apply_plan import apply_plan
    from quantune_iree.model.plan import ActivationQuant, LayerPlan, Plan, QuantConfig
    from quantune_iree.model.target import IntegerForm

    layers = layer_table(conv_stack_model)
    act = ActivationQuant(0.02, 0)
    plan = Plan(
        conv_stack_model.sha256,
        QuantConfig(),
        tuple(
            LayerPlan(lay.id, lay.node, "int8" if lay.id == 0 else "fp32", act, (0.01,) * 8)
            for lay in layers
        ),
    )
    quantized = apply_plan(conv_stack_model, plan, {0: IntegerForm("i16", "im2col", True)})
    tapped = tap_bytecode(quantized, [0])
    runner = Runner(compile_vmfb(tapped.bytecode, get_target("host")), tapped.taps.function)
    plain = Runner(compile_vmfb(quantized, get_target("host")), conv_stack_model.function)
    x = np.random.default_rng(3).standard_normal((1, 4, 10, 10)).astype(np.float32)
    out = runner([x])
    assert out[tapped.taps.output_result[0]].shape == (1, 8, 10, 10)
    assert out[tapped.taps.input_result[0]].shape == (1, 4, 10, 10)
    np.testing.assert_array_equal(out[0], plain([x])[0])

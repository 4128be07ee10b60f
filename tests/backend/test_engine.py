"""The engine: plan → IR → vmfb → runner, with or without taps; compile errors carry the node."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import conv_stack_inputs
from quantune_iree.algo.planning import build_plan
from quantune_iree.backend.compile import _compile_error
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.targets import get_target
from quantune_iree.ir.layers import layer_table
from quantune_iree.model.plan import QuantConfig
from quantune_iree.stages.fp32_pass import run_fp32_pass


@pytest.fixture(scope="module")
def engine_and_plan(conv_stack_model):  # noqa: ANN201
    stats = run_fp32_pass(conv_stack_model, ([x] for x in conv_stack_inputs(2, seed=4)))
    plan = build_plan(conv_stack_model.sha256, layer_table(conv_stack_model), stats, QuantConfig())
    return Engine(conv_stack_model, get_target("host")), plan


def test_lower_applies_the_plan_and_adds_taps(engine_and_plan, conv_stack_model) -> None:
    engine, plan = engine_and_plan
    plain = Engine(conv_stack_model, get_target("host", preset="iree"))
    assert plain.lower().bytecode == conv_stack_model.bytecode
    assert engine.lower().bytecode != conv_stack_model.bytecode  # float convs channels-last
    int8 = engine.lower(plan)
    assert int8.taps is None and int8.bytecode != conv_stack_model.bytecode
    tapped = engine.lower(plan, taps=[0, 3])
    assert tapped.taps is not None and set(tapped.taps.input_result) == {0, 3}
    forms = engine.forms(plan)
    assert forms[1].contraction == "channels_last" and forms[1].reciprocal  # the depthwise conv
    assert plain.forms(plan)[1].contraction == "named"


def test_load_runs_fp32_int8_and_tapped_builds(engine_and_plan) -> None:
    engine, plan = engine_and_plan
    x = conv_stack_inputs(1, seed=9)
    fp32, int8 = engine.load(), engine.load(plan)
    tapped = engine.load(plan, taps=[5])
    want = int8(x)[0]
    assert tapped.taps is not None
    got = tapped(x)
    np.testing.assert_array_equal(got[0], want)  # taps never change the model's output
    assert got[tapped.taps.output_result[5]].shape == want.shape
    assert 10 < 10 * np.log10(np.sum(fp32(x)[0] ** 2) / np.sum((fp32(x)[0] - want) ** 2))
    assert int8.invocations == 1 and fp32.invocations == 2


def test_build_is_reproducible_and_runs_like_load(engine_and_plan) -> None:
    engine, plan = engine_and_plan
    vmfb = engine.build(plan)
    assert engine.build(plan) == vmfb
    x = conv_stack_inputs(1, seed=2)
    np.testing.assert_array_equal(engine.run_vmfb(vmfb)(x)[0], engine.load(plan)(x)[0])


def test_a_compile_error_names_its_node_in_a_field() -> None:
    err = _compile_error(
        'loc("conv0"): error: failed to legalize\nloc("x"): note: more', get_target("host"), "m"
    )
    assert err.node == "conv0" and "at ONNX node 'conv0'" in str(err)
    assert _compile_error("error: no location", get_target("host"), "m").node is None

"""Float convs channels-last: every float conv and depthwise conv of a model rewritten NHWC,
with the model's outputs unchanged to float rounding."""

from __future__ import annotations

import numpy as np
from conftest import conv_stack_inputs
from quantune_iree.backend.compile import compile_vmfb
from quantune_iree.backend.runtime import Runner
from quantune_iree.backend.targets import get_target
from quantune_iree.ir import native
from quantune_iree.ir import session as ir_session
from quantune_iree.ir.relayout import channels_last


def test_channels_last_rewrites_the_float_convs_and_keeps_the_outputs(conv_stack_model) -> None:
    bytecode, count = channels_last(conv_stack_model.bytecode)
    assert count == 3  # conv 3x3, depthwise, 1x1; the grouped conv keeps its named op
    module = ir_session.parse_module(ir_session.new_session(), bytecode)
    ops = [lay.op_name for lay in native.layer_table(module)]
    # The 3x3 and 1x1 convs are named NHWC; the depthwise generic is no longer listed.
    assert ops == [
        "linalg.conv_2d_nhwc_hwcf",
        "linalg.conv_2d_ngchw_gfchw",
        "linalg.conv_2d_nhwc_hwcf",
        "linalg.matmul",
        "linalg.matmul",
    ]
    host = get_target("host", preset="iree")
    before = Runner(compile_vmfb(conv_stack_model.bytecode, host), "conv_stack")
    after = Runner(compile_vmfb(bytecode, host), "conv_stack")
    for x in conv_stack_inputs(3, seed=3):
        np.testing.assert_allclose(after([x])[0], before([x])[0], rtol=1e-5, atol=1e-5)
    assert channels_last(bytecode)[1] == 0  # nothing left to rewrite

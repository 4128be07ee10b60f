"""The INT8 pass: two full passes in all, errors measured against the FP32 pass's references."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import conv_stack_inputs, npy_folder
from quantune_iree.algo.metrics import sqnr
from quantune_iree.algo.planning import build_plan
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.targets import get_target
from quantune_iree.errors import QuantuneError
from quantune_iree.io.dataset import iter_samples
from quantune_iree.ir.layers import layer_table
from quantune_iree.model.plan import QuantConfig
from quantune_iree.stages.fp32_pass import run_fp32_pass
from quantune_iree.stages.int8_pass import run_int8_pass


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory) -> str:
    return npy_folder(tmp_path_factory.mktemp("calib"), conv_stack_inputs(4, seed=11))


def _samples(model, calib_dir):  # noqa: ANN001, ANN202
    return iter_samples(calib_dir, model.inputs)


def test_int8_pass_measures_against_fp32(conv_stack_model, calib_dir) -> None:
    layers = layer_table(conv_stack_model)
    stats = run_fp32_pass(
        conv_stack_model, _samples(conv_stack_model, calib_dir), reference_elements=10_000
    )
    plan = build_plan(conv_stack_model.sha256, layers, stats, QuantConfig())
    result = run_int8_pass(conv_stack_model, plan, stats, _samples(conv_stack_model, calib_dir))
    assert stats.invocations == result.invocations == 4  # two full passes, nothing more
    assert [e.layer_id for e in result.layers] == [lay.id for lay in layers]
    first = result.layers[0]
    assert first.input_sqnr_db == np.inf  # the model input reaches layer 0 unquantized
    assert all(10.0 < e.output_sqnr_db < 60.0 for e in result.layers)

    # The end-to-end number equals running the untapped FP32 and INT8 builds directly.
    engine = Engine(conv_stack_model, get_target("host"))
    fp32, int8 = engine.load(None), engine.load(plan)
    xs = [s[0] for s in _samples(conv_stack_model, calib_dir)]
    want = sqnr(np.stack([fp32([x])[0] for x in xs]), np.stack([int8([x])[0] for x in xs]))
    assert result.output_sqnr_db == pytest.approx(want, abs=1e-6)
    # The layer feeding the model output measures the same error as the output itself.
    assert result.layers[-1].output_sqnr_db == pytest.approx(want, abs=1e-6)


def test_subsampled_references_estimate_the_full_error(conv_stack_model, calib_dir) -> None:
    layers = layer_table(conv_stack_model)
    full = run_fp32_pass(
        conv_stack_model, _samples(conv_stack_model, calib_dir), reference_elements=10_000
    )
    sub = run_fp32_pass(
        conv_stack_model, _samples(conv_stack_model, calib_dir), reference_elements=256
    )
    plan = build_plan(conv_stack_model.sha256, layers, full, QuantConfig())
    a = run_int8_pass(conv_stack_model, plan, full, _samples(conv_stack_model, calib_dir))
    b = run_int8_pass(conv_stack_model, plan, sub, _samples(conv_stack_model, calib_dir))
    for ea, eb in zip(a.layers, b.layers, strict=True):
        assert abs(ea.output_sqnr_db - eb.output_sqnr_db) < 1.0, (ea, eb)


def test_different_sample_count_is_refused(conv_stack_model, calib_dir) -> None:
    layers = layer_table(conv_stack_model)
    stats = run_fp32_pass(conv_stack_model, _samples(conv_stack_model, calib_dir))
    plan = build_plan(conv_stack_model.sha256, layers, stats, QuantConfig())
    few = iter_samples(calib_dir, conv_stack_model.inputs, limit=2)
    with pytest.raises(QuantuneError, match="the INT8 pass got 2 samples, the FP32 pass 4"):
        run_int8_pass(conv_stack_model, plan, stats, few)

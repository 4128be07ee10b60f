"""The output-SQNR search on a real build: each candidate is one counted inference pass."""

from __future__ import annotations

from conftest import conv_stack_inputs
from quantune_iree.algo.ranking import rank_layers
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.targets import get_target
from quantune_iree.ir.layers import layer_table
from quantune_iree.model.plan import QuantConfig, with_precisions
from quantune_iree.stages.analysis import analyze
from quantune_iree.stages.search import min_sqnr_selection, output_sqnr


def test_min_sqnr_selection_reaches_its_target(conv_stack_model) -> None:
    layers = layer_table(conv_stack_model)
    inputs = conv_stack_inputs(3, seed=12)

    def samples():  # noqa: ANN202
        return ([x] for x in inputs)

    analysis = analyze(conv_stack_model, layers, samples, QuantConfig())
    engine = Engine(conv_stack_model, get_target("host"))
    int8_db = analysis.int8.output_sqnr_db
    assert (
        abs(output_sqnr(engine, analysis.int8_plan, analysis.calibration, samples()) - int8_db)
        < 1e-9
    )
    ranking = rank_layers(analysis.layers)
    goal = int8_db + 6.0
    sel = min_sqnr_selection(
        engine, analysis.int8_plan, ranking, analysis.calibration, samples, goal, int8_db
    )
    assert 1 <= sel.extra_passes <= 3 and sel.output_sqnr_db >= goal
    plan = with_precisions(analysis.int8_plan, sel.fp32)
    assert output_sqnr(engine, plan, analysis.calibration, samples()) >= goal

"""Reports: one list of facts for the console and the Markdown, the reasons, CSV and sidecar."""

from __future__ import annotations

import json

from quantune_iree.io import report
from quantune_iree.io.sidecar import sidecar_json
from quantune_iree.model.plan import (
    ActivationQuant,
    LayerPlan,
    Plan,
    QuantConfig,
    SensitivityMetrics,
)
from quantune_iree.model.results import JobOutcome, KindSpeed, RankedLayer, Selection
from quantune_iree.model.target import Target

METRICS = SensitivityMetrics(40.0, 1e-6, 30.0, 25.0, 0.01, 5.0)
PLAN = Plan(
    "ab" * 32,
    QuantConfig(),
    (
        LayerPlan(0, "a", "fp32", ActivationQuant(0.1, 0), (0.2,), "r0", 0, 1.0, METRICS),
        LayerPlan(1, "b", "int8", ActivationQuant(0.1, 3), (0.2,), "r1", 1, 0.0, METRICS),
        LayerPlan(2, "c", "fp32", None, (), "weight is not an f32 constant"),
    ),
)


def test_console_and_markdown_tell_the_same_facts() -> None:
    outcome = JobOutcome(
        "m.onnx",
        PLAN,
        selection=Selection((0,), 3, 31.5, "fewest for 30 dB"),
        kind_speeds=(KindSpeed("conv", 2, 4.0, 3.0), KindSpeed("all", 2, 4.0, 5.0)),
        latency=(4.0, 5.0),
    )
    console = report.console_summary(outcome, ["b.json", "a.vmfb"])
    md = report.report_markdown(outcome)
    for label, text in report.job_facts(outcome):
        assert f"{label}: {text}" in console
        assert f"{label[0].upper()}{label[1:]}: {text}." in md
    assert "3 extra inference passes, output SQNR 31.50 dB" in console
    assert "median ms: conv (2): INT8 4.00 vs FP32 3.00 -> FP32" in console
    assert "latency on this host: this plan 4.00 ms, FP32 5.00 ms (1.25x FP32's speed)" in console
    assert console.endswith("wrote a.vmfb, b.json")
    assert "plan: 1 int8, 2 fp32 of 3 layers; fp32: 0:a, 2:c" in md


def test_a53_estimates_are_labelled_as_estimates() -> None:
    speeds = (
        KindSpeed("conv", 2, 40.0, 30.0, "Mcycles"),
        KindSpeed("all", 2, 40.0, 50.0, "Mcycles"),
    )
    outcome = JobOutcome(
        "m.onnx",
        PLAN,
        kind_speeds=speeds,
        latency=(40.0, 50.0),
        latency_unit="Mcycles",
        target_name="cortex-a53",
    )
    console = report.console_summary(outcome, ["a.vmfb"])
    assert "M cycles (A53 estimate) of one run on cortex-a53, estimated (a53sim" in console
    assert "conv (2): INT8 40.00 vs FP32 30.00 -> FP32" in console
    assert (
        "estimate for cortex-a53: this plan 40.00 M cycles (A53 estimate), FP32 50.00 M cycles "
        "(A53 estimate) (1.25x FP32's speed)" in console
    )
    assert "on this host" not in console
    reasons = report.slow_reasons([], {0: speeds[1]}, "cortex-a53")
    assert reasons[0] == (
        "INT8 does not pay on cortex-a53: the FP32 model takes 50.00 M cycles (A53 estimate), "
        "the full-INT8 one 40.00 M cycles (A53 estimate)"
    )


def test_reasons() -> None:
    ranking = [RankedLayer(1, "b", 0.9, 0), RankedLayer(0, "a", 0.1, 1)]
    reasons = report.rank_reasons(ranking, Selection((1,), 0, None, "top 1 of 2"), "combined")
    assert reasons == {
        1: "rank 1/2 by combined sensitivity: kept FP32 (top 1 of 2)",
        0: "rank 2/2 by combined sensitivity: INT8",
    }
    assert report.fallback_reason("vulkan-x") == "vulkan-x backend failed to compile it in int8"


def test_csv_rows_most_sensitive_first_and_metrics_columns() -> None:
    lines = report.plan_csv(PLAN).splitlines()
    assert lines[0].split(",")[:6] == ["rank", "id", "node", "precision", "score", "weight_sqnr_db"]
    assert [ln.split(",")[1] for ln in lines[1:]] == ["0", "1", "2"]
    assert lines[-1].endswith("weight is not an f32 constant")


def test_sidecar_lists_what_an_app_needs() -> None:
    from quantune_iree.model.graph import ImportedModel, TensorSpec

    model = ImportedModel(
        "/x/m.onnx", "ab" * 32, b"", (TensorSpec("x", (1, 3), "float32"),),
        (TensorSpec("y", (1, 2), "float32"),), {}, "main_graph",
    )  # fmt: skip
    target = Target("host", "local-task", ("--f",), ("--task_worker_stack_size=1048576",))
    side = json.loads(sidecar_json(model, PLAN, target, "cd" * 32, None))
    assert side["function"] == "main_graph" and side["model"] == "m.onnx"
    assert side["target"]["runtime_flags"] == ["--task_worker_stack_size=1048576"]
    assert side["target"]["channels_last"] is False and side["target"]["isa"] == "generic"
    assert side["inputs"] == [{"name": "x", "shape": [1, 3], "dtype": "float32"}]
    assert side["plan"]["summary"] == {"layers": 3, "int8": 1, "fp32": 2}

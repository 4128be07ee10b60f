"""Plan files: a round trip keeps everything, and edits are honoured."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from quantune_iree.errors import QuantuneError
from quantune_iree.model.plan import (
    ActivationQuant,
    EqualizedPair,
    LayerPlan,
    Plan,
    QuantConfig,
    SensitivityMetrics,
    plan_from_json,
    plan_to_json,
    with_precisions,
)

PLAN = Plan(
    "ab" * 32,
    QuantConfig(calibration="mse", symmetric=True),
    (
        LayerPlan(
            0,
            "a",
            "int8",
            ActivationQuant(0.0235294122, -3),
            (0.1, 0.2),
            "why",
            0,
            0.9,
            SensitivityMetrics(30.0, 1e-5, math.inf, 40.0, 1e-3, math.inf),
        ),
        LayerPlan(1, "b", "fp32", ActivationQuant(0.5, 0), (0.3,), "kept", 1, 0.1),
        LayerPlan(2, "c", "fp32", None, (), "weight is not an f32 constant"),
    ),
)


def test_round_trip() -> None:
    text = plan_to_json(PLAN, "quantune-iree test")
    back = plan_from_json(text, "p.json")
    assert back == PLAN
    assert back.layers[0].metrics == PLAN.layers[0].metrics  # compare=False in the layer
    assert back.layers[0].metrics.sqnr_delta_db == math.inf
    assert plan_to_json(back, "quantune-iree test") == text  # stable bytes


def test_edit_and_with_precisions() -> None:
    data = json.loads(plan_to_json(PLAN, "t"))
    data["layers"][1]["precision"] = "int8"  # a reviewer flips layer 1
    edited = plan_from_json(json.dumps(data), "p.json")
    assert [lp.precision for lp in edited.layers] == ["int8", "int8", "fp32"]
    flipped = with_precisions(PLAN, [0])
    # Layer 2 cannot be int8 (no activation scale): it stays fp32 whatever is asked.
    assert [lp.precision for lp in flipped.layers] == ["fp32", "int8", "fp32"]


def test_int8_without_scale_is_refused() -> None:
    data = json.loads(plan_to_json(PLAN, "t"))
    data["layers"][2]["precision"] = "int8"
    with pytest.raises(QuantuneError, match="layer 2 is int8 but has no activation scale"):
        plan_from_json(json.dumps(data), "p.json")


def test_partial_metrics_are_refused() -> None:
    data = json.loads(plan_to_json(PLAN, "t"))
    del data["layers"][0]["metrics"]["act_mse"]
    with pytest.raises(QuantuneError, match="metrics must be weight_sqnr_db"):
        plan_from_json(json.dumps(data), "p.json")


def test_corrections_offsets_and_equalization_round_trip() -> None:
    offsets = np.array([0, 1, -2, 0, 0, 3], np.int8)
    plan = replace(
        PLAN,
        config=QuantConfig(
            bias_correction="empirical", weight_rounding="gptq", equalization="weights"
        ),
        layers=(
            replace(
                PLAN.layers[0],
                range_method="mse",
                bias_correction=(0.25, -0.5),
                weight_offsets=offsets,
            ),
            *PLAN.layers[1:],
        ),
        equalization=(EqualizedPair("a", "b", (0.5, 2.0)),),
    )
    back = plan_from_json(plan_to_json(plan, "t"), "p.json")
    assert back == plan
    np.testing.assert_array_equal(back.layers[0].weight_offsets, offsets)
    assert back.layers[1].weight_offsets is None and back.layers[0].range_method == "mse"


def test_plans_written_before_the_corrections_read_as_uncorrected() -> None:
    data = json.loads(plan_to_json(PLAN, "t"))
    for key in ("bias_correction", "weight_rounding", "equalization"):
        del data["config"][key]
    del data["equalization"]
    for entry in data["layers"]:
        for key in ("bias_correction", "weight_offsets", "range_method"):
            del entry[key]
    back = plan_from_json(json.dumps(data), "old.json")
    assert back.config.bias_correction == "none" and back.config.weight_rounding == "nearest"
    assert back.config.equalization == "none" and back.layers[0].bias_correction == ()


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d["config"].update(bias_correction="kl"), "unknown bias correction 'kl'"),
        (lambda d: d["config"].update(weight_rounding="up"), "unknown weight rounding 'up'"),
        (lambda d: d["config"].update(equalization="all"), "unknown equalization 'all'"),
        (lambda d: d["layers"][0].update(weight_offsets="@@"), "not base64 zlib data"),
        (
            lambda d: d.update(equalization=[{"first": "a", "second": "b", "scales": [0.0]}]),
            "equalization scales must be positive",
        ),
    ],
)
def test_bad_new_fields_are_refused(edit, message) -> None:
    data = json.loads(plan_to_json(PLAN, "t"))
    edit(data)
    with pytest.raises(QuantuneError, match=message):
        plan_from_json(json.dumps(data), "p.json")

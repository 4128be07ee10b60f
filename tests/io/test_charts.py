"""Charts: matplotlib figures with labelled axes and the values written on the marks; the same
inputs give the same PNG bytes."""

from __future__ import annotations

import io

from PIL import Image
from quantune_iree.io import charts
from quantune_iree.model.plan import ActivationQuant, LayerPlan, Plan, QuantConfig


def _plan() -> Plan:
    act = ActivationQuant(0.1, 0)
    layers = tuple(
        LayerPlan(i, f"/blocks.{i}/Conv", "fp32" if i == 1 else "int8", act, (0.01,), "", i, s)
        for i, s in enumerate([0.25, 1.5, 0.125])
    )
    return Plan("0" * 64, QuantConfig(), layers)


def test_sensitivity_chart_has_labelled_axes_and_values() -> None:
    ax = charts.sensitivity_figure(_plan()).axes[0]
    assert "sensitivity score" in ax.get_xlabel() and "layer" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "0 /blocks.0/Conv",
        "1 /blocks.1/Conv",
        "2 /blocks.2/Conv",
    ]
    assert {t.get_text().strip() for t in ax.texts} == {"0.25", "1.5", "0.125"}
    colors = [p.get_facecolor()[:3] for p in ax.patches]
    assert colors[1] != colors[0] == colors[2]  # the FP32 layer stands out
    png = charts.sensitivity_png(_plan())
    assert png == charts.sensitivity_png(_plan())  # reproducible bytes
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_agreement_chart_has_labelled_axes_and_values() -> None:
    series = {"combined": [(0, 75.4), (2, 82.6), (4, 84.4)], "random": [(0, 75.4), (2, 75.9)]}
    ax = charts.agreement_figure(series, "MobileNetV2", 53).axes[0]
    assert "FP32 layers" in ax.get_xlabel() and "agreement" in ax.get_ylabel()
    assert ax.get_title() == "MobileNetV2"
    assert {t.get_text() for t in ax.texts} >= {"75.4", "82.6", "84.4", "75.9"}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["combined", "random"]
    png = charts.agreement_png(series, "MobileNetV2", 53)
    assert Image.open(io.BytesIO(png)).size[0] >= 800

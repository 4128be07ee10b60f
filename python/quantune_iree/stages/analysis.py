"""QuantuneV2 sensitivity analysis: per-layer local metrics from exactly two full inference
passes over the calibration set (FP32, then fully INT8), plus the weights (no inference)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import numpy as np

from ..algo.planning import build_plan, layer_metrics, with_empirical_corrections
from ..model.graph import ImportedModel
from ..model.layer import Layer
from ..model.plan import QuantConfig
from ..model.results import Analysis
from ..model.target import Target
from .fp32_pass import run_fp32_pass
from .int8_pass import run_int8_pass


def analyze(
    model: ImportedModel,
    layers: Sequence[Layer],
    samples: Callable[[], Iterable[Sequence[np.ndarray]]],
    config: QuantConfig,
    *,
    target: Target | None = None,
    reference_elements: int = 2048,
    progress: Callable[[str, int], None] | None = None,
) -> Analysis:
    """Runs the FP32 pass and the INT8 pass (each once over `samples()`) and measures."""
    t0 = time.perf_counter()
    candidates = [lay for lay in layers if not lay.unquantizable_reason]
    fp32 = run_fp32_pass(
        model,
        samples(),
        target=target,
        layers=candidates,
        reference_elements=reference_elements,
        second_moments=config.weight_rounding == "gptq",
        progress=(lambda n: progress("FP32 pass", n)) if progress else None,
    )
    plan = replace(build_plan(model.sha256, layers, fp32, config), equalization=model.equalization)
    int8 = run_int8_pass(
        model,
        plan,
        fp32,
        samples(),
        target=target,
        layers=candidates,
        progress=(lambda n: progress("INT8 pass", n)) if progress else None,
    )
    if config.bias_correction == "empirical":
        # One shot: each layer's own mean error, measured in the INT8 pass just run. The
        # metrics above describe the model without these corrections.
        plan = with_empirical_corrections(plan, fp32, int8, candidates)
    return Analysis(
        layers=layer_metrics(layers, plan, int8),
        calibration=fp32,
        int8_plan=plan,
        int8=int8,
        inference_passes=2,
        seconds=time.perf_counter() - t0,
    )

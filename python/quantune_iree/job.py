"""The main job, stage by stage: import → analysis (two inference passes) → ranking → plan →
mixed-precision build → outputs. Options come in as one frozen dataclass; the CLI only parses."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from . import __version__
from .analysis import Analysis, analyze
from .compile import build_vmfb
from .dataset import Preprocess, calibration_files, iter_samples
from .errors import QuantuneError
from .importer import ImportedModel, import_onnx
from .layers import Layer, layer_table
from .output import check_writable, write_all_atomic
from .plan import (
    Plan,
    QuantConfig,
    check_plan_matches,
    plan_from_json,
    plan_to_json,
    with_precisions,
)
from .quantize import quantize_model
from .ranking import rank_layers
from .report import plan_csv, plan_markdown, plan_summary, sensitivity_png, sidecar_json
from .selection import Selection, fraction_k, search_min_sqnr, top_k
from .speed import OBJECTIVES, KindSpeed, measure_kinds, plan_latency, slow_layer_reasons
from .targets import Target, get_target

DEFAULT_FP32_FRACTION = 0.05
TOOL = f"quantune-iree {__version__}"


@dataclass(frozen=True)
class JobOptions:
    model: str
    output: str  # the .vmfb for compile; a path prefix for analyze
    calib: str | None = None
    calib_limit: int | None = None
    preprocess: Preprocess | None = None
    input_shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)
    target: Target | None = None
    config: QuantConfig = QuantConfig()
    ranker: str = "combined"
    weights: Mapping[str, float] | None = None
    seed: int = 0
    fp32_layers: int | None = None
    fp32_fraction: float | None = None
    min_sqnr: float | None = None
    plan: str | None = None  # re-apply a saved plan instead of analysing
    reference_elements: int = 2048
    objective: str = "accuracy"  # accuracy | balanced | speed (speed.py)


@dataclass(frozen=True)
class JobResult:
    plan: Plan
    analysis: Analysis | None
    selection: Selection | None
    files: tuple[str, ...]
    summary: str
    kind_speeds: tuple[KindSpeed, ...] = ()
    latency_ms: tuple[float, float] | None = None  # (plan, FP32) on this host


def output_paths(output: str, with_vmfb: bool) -> dict[str, str]:
    stem = output[: -len(".vmfb")] if output.endswith(".vmfb") else output
    paths = {
        "plan": f"{stem}.plan.json",
        "report_md": f"{stem}.report.md",
        "report_csv": f"{stem}.report.csv",
        "chart": f"{stem}.sensitivity.png",
    }
    if with_vmfb:
        paths["vmfb"] = output
        paths["sidecar"] = f"{output}.json"
    return paths


def _selection(opts: JobOptions) -> str:
    chosen = [x is not None for x in (opts.fp32_layers, opts.fp32_fraction, opts.min_sqnr)]
    if sum(chosen) > 1:
        raise QuantuneError("--fp32-layers, --fp32-fraction and --min-sqnr conflict: give one")
    if opts.min_sqnr is not None:
        return "min_sqnr"
    return "k"


def _analysed_plan(
    opts: JobOptions,
    model: ImportedModel,
    layers: Sequence[Layer],
    progress: Callable[[str, int], None] | None,
) -> tuple[Plan, Analysis, Selection, tuple[KindSpeed, ...]]:
    if not opts.calib:
        raise QuantuneError("--calib DIR is required (or --plan to re-apply a saved plan)")
    calibration_files(opts.calib)  # refuse a bad folder before any work

    def samples():  # noqa: ANN202 - a fresh pass over the calibration set
        return iter_samples(opts.calib, model.inputs, opts.preprocess, opts.calib_limit)

    samples()  # checks the data fits the model's inputs
    analysis = analyze(
        model,
        layers,
        samples,
        opts.config,
        reference_elements=opts.reference_elements,
        progress=progress,
    )
    ranking = rank_layers(analysis.layers, opts.ranker, opts.weights, opts.seed)
    n = len(ranking)
    if _selection(opts) == "min_sqnr":
        assert opts.min_sqnr is not None
        selection = search_min_sqnr(
            model,
            analysis.int8_plan,
            ranking,
            analysis.calibration,
            samples,
            opts.min_sqnr,
            analysis.int8.output_sqnr_db,
        )
    else:
        k = (
            opts.fp32_layers
            if opts.fp32_layers is not None
            else fraction_k(
                n, opts.fp32_fraction if opts.fp32_fraction is not None else DEFAULT_FP32_FRACTION
            )
        )
        selection = Selection(top_k(ranking, k), 0, None, f"top {k} of {n} by {opts.ranker}")
    speeds: tuple[KindSpeed, ...] = ()
    slow: dict[int, str] = {}
    if opts.objective != "accuracy":
        target = opts.target or get_target("host")
        sample = next(iter(samples()))
        speeds = measure_kinds(model, layers, analysis.int8_plan, target, sample)
        int8_ids = {lp.layer_id for lp in analysis.int8_plan.int8_layers}
        slow = {
            i: why for i, why in slow_layer_reasons(layers, speeds, target).items() if i in int8_ids
        }
        kept = [] if opts.objective == "speed" else list(selection.fp32)
        fp32_ids = tuple(kept + [i for i in slow if i not in kept])
        rule = (
            f"{selection.rule}, plus" if opts.objective == "balanced" else "objective speed:"
        ) + f" {len(slow)} layers of kinds INT8 makes slower on {target.name}"
        selection = Selection(fp32_ids, selection.extra_passes, selection.output_sqnr_db, rule)
    fp32 = set(selection.fp32)
    reasons = {
        r.layer_id: (
            f"rank {r.rank + 1}/{n} by {opts.ranker} sensitivity: kept FP32 ({selection.rule})"
            if r.layer_id in fp32
            else f"rank {r.rank + 1}/{n} by {opts.ranker} sensitivity: INT8"
        )
        for r in ranking
    }
    reasons.update(slow)  # every slow layer is in the FP32 set, under both objectives
    metrics = {
        m.layer_id: {
            "weight_sqnr_db": m.weight_sqnr_db,
            "weight_mse": m.weight_mse,
            "input_sqnr_db": m.input_sqnr_db,
            "act_sqnr_db": m.act_sqnr_db,
            "act_mse": m.act_mse,
            "sqnr_delta_db": m.sqnr_delta_db,
        }
        for m in analysis.layers
    }
    plan = with_precisions(
        analysis.int8_plan,
        selection.fp32,
        reasons=reasons,
        ranks={r.layer_id: (r.rank, r.score) for r in ranking},
        metrics=metrics,
    )
    return plan, analysis, selection, speeds


def run_job(
    opts: JobOptions, build: bool, progress: Callable[[str, int], None] | None = None
) -> JobResult:
    """compile (build=True) or analyze (build=False). Writes all outputs at once, or none."""
    paths = output_paths(opts.output, build)
    for path in paths.values():
        check_writable(path)
    if build and opts.target is None:
        raise QuantuneError("no target given")
    model = import_onnx(opts.model, opts.input_shapes)
    layers = layer_table(model)
    analysis: Analysis | None = None
    selection: Selection | None = None
    speeds: tuple[KindSpeed, ...] = ()
    if opts.objective not in OBJECTIVES:
        raise QuantuneError(f"unknown objective '{opts.objective}'; known: {', '.join(OBJECTIVES)}")
    if opts.plan:
        try:
            with open(opts.plan) as f:
                text = f.read()
        except OSError as exc:
            raise QuantuneError(f"{opts.plan}: cannot read plan ({exc.strerror})") from None
        plan = plan_from_json(text, opts.plan)
        check_plan_matches(plan, layers, model.sha256, opts.plan)
    else:
        plan, analysis, selection, speeds = _analysed_plan(opts, model, layers, progress)

    files: dict[str, bytes | str] = {}
    lines = []
    latency: tuple[float, float] | None = None
    if build:
        assert opts.target is not None
        vmfb, plan = build_vmfb(lambda p: quantize_model(model, p), plan, opts.target)
        digest = hashlib.sha256(vmfb).hexdigest()
        files[paths["vmfb"]] = vmfb
        files[paths["sidecar"]] = sidecar_json(model, plan, opts.target, digest, opts.preprocess)
        if speeds:
            sample = next(iter(iter_samples(opts.calib, model.inputs, opts.preprocess, 1)))
            latency = plan_latency(model, vmfb, opts.target, sample)
    header = f"# {os.path.basename(opts.model)}: quantune-iree sensitivity report\n"
    if analysis is not None:
        header += (
            f"\nAnalysis: {analysis.inference_passes} full inference passes over "
            f"{analysis.calibration.samples} calibration samples in {analysis.seconds:.1f} s; "
            f"full-INT8 output SQNR {analysis.int8.output_sqnr_db:.2f} dB, top-1 agreement "
            f"{100 * analysis.int8.top1_agreement:.1f}% on the calibration set.\n"
        )
        lines.append(
            f"analysis: {analysis.inference_passes} inference passes, "
            f"{analysis.calibration.samples} samples, {analysis.seconds:.1f} s; full INT8 "
            f"output SQNR {analysis.int8.output_sqnr_db:.2f} dB, top-1 agreement "
            f"{100 * analysis.int8.top1_agreement:.1f}%"
        )
    if selection is not None:
        extra = (
            f", {selection.extra_passes} extra inference passes" if selection.extra_passes else ""
        )
        sqnr = (
            f", output SQNR {selection.output_sqnr_db:.2f} dB"
            if selection.output_sqnr_db is not None
            else ""
        )
        header += f"\nSelection: {selection.rule}{extra}{sqnr}.\n"
        lines.append(f"selection: {selection.rule}{extra}{sqnr}")
    if speeds:
        table = "; ".join(
            f"{s.kind} ({s.layers}): INT8 {s.int8_ms:.2f} ms vs FP32 {s.fp32_ms:.2f} ms"
            + (" -> FP32" if s.int8_slower else "")
            for s in speeds
        )
        header += f"\nSpeed by layer kind on this host (model latency, median): {table}.\n"
        lines.append(f"speed by layer kind (model latency on this host): {table}")
    if latency is not None:
        text = (
            f"latency on this host: this plan {latency[0]:.2f} ms, FP32 {latency[1]:.2f} ms "
            f"({latency[1] / latency[0]:.2f}x FP32's speed)"
        )
        header += f"\n{text[0].upper()}{text[1:]}.\n"
        lines.append(text)
    header += "\n" + plan_summary(plan) + "\n"
    lines.append(plan_summary(plan))
    files[paths["plan"]] = plan_to_json(plan, TOOL)
    files[paths["report_md"]] = plan_markdown(plan, header)
    files[paths["report_csv"]] = plan_csv(plan)
    files[paths["chart"]] = sensitivity_png(plan)
    write_all_atomic(files)
    lines.append("wrote " + ", ".join(sorted(files)))
    return JobResult(
        plan, analysis, selection, tuple(sorted(files)), "\n".join(lines), speeds, latency
    )

"""The main job, stage by stage: import → analysis (two inference passes) → ranking → selection
→ plan → build (with the fallback loop) → outputs. Options come in as one frozen dataclass; the
decisions live in `algo`, the texts in `io.report`, the work in `stages` and `backend`."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import onnx

from .algo.ranking import rank_layers
from .algo.selection import (
    OBJECTIVES,
    apply_objective,
    fraction_k,
    slow_layers,
    top_k,
    with_fp32_kinds,
)
from .backend.a53est import ENV_VAR as A53EST_ENV
from .backend.a53est import A53Estimator
from .backend.engine import Engine
from .backend.storage_probe import check_i8_storage
from .backend.targets import fp32_kinds, get_target
from .errors import QuantuneError
from .io import report
from .io.dataset import Preprocess, check_calibration, iter_samples, samples_in_memory
from .io.output import check_writable, write_all_atomic
from .io.sidecar import sidecar_json
from .io.text import TextSource
from .ir.equalize import activation_equalization, apply_equalization, weight_equalization
from .ir.importer import import_onnx
from .ir.layers import layer_table
from .ir.smooth import input_smoothing, probed
from .model.graph import ImportedModel
from .model.layer import Layer
from .model.plan import (
    EqualizedPair,
    Plan,
    QuantConfig,
    Rescaling,
    check_plan_matches,
    plan_from_json,
    plan_to_json,
    with_precisions,
)
from .model.results import Analysis, JobOutcome, KindSpeed, Selection, Verification
from .model.target import Target
from .stages.analysis import analyze
from .stages.fp32_pass import probe_inputs
from .stages.search import min_sqnr_selection
from .stages.speed_probe import check_probe_target, measure_kinds, plan_latency
from .stages.verify import verify_build, verify_device

DEFAULT_FP32_FRACTION = 0.05
MAX_FALLBACKS = 8


@dataclass(frozen=True)
class JobOptions:
    model: str
    output: str  # the .vmfb for compile; a path prefix for analyze
    # A folder or file of calibration data, or data in memory (io.dataset.samples_in_memory).
    calib: str | object | None = None
    calib_limit: int | None = None
    preprocess: Preprocess | TextSource | None = None
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
    objective: str = "accuracy"  # one of algo.selection.OBJECTIVES
    a53est: str | None = None  # A53 estimator script: the objectives' pricing for cortex-a53
    verify: bool = False  # run a Vulkan build on this machine's device against the host build
    # Calibration samples the activation-equalization probe runs (None: all of them, one more
    # pass; 16 measured 0.8 dB worse on MobileNetV2: docs/results/accuracy.md).
    equalization_probe: int | None = None


@dataclass(frozen=True)
class JobResult:
    outcome: JobOutcome
    files: tuple[str, ...]
    summary: str
    contents: Mapping[str, bytes | str] = field(default_factory=dict, repr=False)  # path → data

    @property
    def plan(self) -> Plan:
        return self.outcome.plan

    @property
    def analysis(self) -> Analysis | None:
        return self.outcome.analysis

    @property
    def selection(self) -> Selection | None:
        return self.outcome.selection

    @property
    def kind_speeds(self) -> tuple[KindSpeed, ...]:
        return self.outcome.kind_speeds

    @property
    def latency(self) -> tuple[float, float] | None:
        return self.outcome.latency


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


def _check_options(opts: JobOptions) -> None:
    chosen = [x is not None for x in (opts.fp32_layers, opts.fp32_fraction, opts.min_sqnr)]
    if sum(chosen) > 1:
        raise QuantuneError("fp32_layers, fp32_fraction and min_sqnr conflict: give one")
    if opts.equalization_probe is not None and opts.equalization_probe < 1:
        raise QuantuneError("--equalization-probe must be at least 1 sample")
    if opts.objective not in OBJECTIVES:
        raise QuantuneError(f"unknown objective '{opts.objective}'; known: {', '.join(OBJECTIVES)}")
    if not opts.plan and opts.calib is None:
        raise QuantuneError("calibration data is required (or a saved plan to re-apply)")
    if opts.verify and opts.calib is None:
        raise QuantuneError("--verify runs calibration samples on the device: give --calib DIR")
    if opts.objective != "accuracy" and not opts.plan:
        check_probe_target(opts.target or get_target("host"), _estimator(opts))


def _analysed_plan(
    opts: JobOptions,
    model: ImportedModel,
    layers: Sequence[Layer],
    progress: Callable[[str, int], None] | None,
    notes: list[str],
) -> tuple[Plan, Analysis, Selection, tuple[KindSpeed, ...]]:
    assert opts.calib is not None
    if isinstance(opts.calib, str):
        check_calibration(opts.calib, opts.preprocess)  # refuse bad data before any work

    def samples():  # noqa: ANN202 - a fresh pass over the calibration set
        return iter_samples(opts.calib, model.inputs, opts.preprocess, opts.calib_limit, notes)

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
    if opts.min_sqnr is not None:
        selection = min_sqnr_selection(
            Engine(model, get_target("host")),
            analysis.int8_plan,
            ranking,
            analysis.calibration,
            samples,
            opts.min_sqnr,
            analysis.int8.output_sqnr_db,
        )
    else:
        fraction = DEFAULT_FP32_FRACTION if opts.fp32_fraction is None else opts.fp32_fraction
        k = opts.fp32_layers if opts.fp32_layers is not None else fraction_k(n, fraction)
        selection = Selection(top_k(ranking, k), 0, None, f"top {k} of {n} by {opts.ranker}")
    speeds: tuple[KindSpeed, ...] = ()
    reasons = {}
    if opts.objective != "accuracy":
        engine = Engine(model, opts.target or get_target("host"))
        estimator = _estimator(opts)
        sample = next(iter(samples()))
        speeds = measure_kinds(engine, layers, analysis.int8_plan, sample, estimator=estimator)
        int8_ids = {lp.layer_id for lp in analysis.int8_plan.int8_layers}
        slow = {i: s for i, s in slow_layers(layers, speeds).items() if i in int8_ids}
        selection = apply_objective(selection, opts.objective, slow, engine.target.name)
        reasons = report.slow_reasons(layers, slow, engine.target.name)
    elif opts.target is not None and (kinds := fp32_kinds(opts.target)):
        selection, added = with_fp32_kinds(selection, layers, kinds, opts.target.name)
        reasons = report.kind_reasons(layers, added, opts.target.name)
    # Every slow (or target-kept) layer is in the FP32 set: its reason wins.
    reasons = {**report.rank_reasons(ranking, selection, opts.ranker), **reasons}
    plan = with_precisions(
        analysis.int8_plan,
        selection.fp32,
        reasons=reasons,
        ranks={r.layer_id: (r.rank, r.score) for r in ranking},
        metrics={m.layer_id: m.metrics for m in analysis.layers},
    )
    return plan, analysis, selection, speeds


def _estimator(opts: JobOptions) -> A53Estimator | None:
    """The A53 estimator, for a cortex-a53 target with a speed objective."""
    if opts.target is None or opts.target.name != "cortex-a53" or opts.objective == "accuracy":
        return None
    script = opts.a53est or os.environ.get(A53EST_ENV)
    if not script:
        raise QuantuneError(
            f"the {opts.objective} objective for cortex-a53 prices builds with the A53 "
            f"estimator: give its script (a53est.sh) with --a53est or ${A53EST_ENV}"
        )
    return A53Estimator(script)


def rescale_inputs(
    opts: JobOptions, model: ImportedModel, layers: Sequence[Layer]
) -> tuple[ImportedModel, tuple[int, float]]:
    """Re-imports the model with its layers' inputs rescaled as the config asks, measured by one
    probe over the calibration samples (the first `opts.equalization_probe` of them): activation
    equalization evens out depthwise convs' input channels (ir.equalize), input smoothing moves
    other layers' input outliers into their weights (ir.smooth). Returns the model and
    (samples, seconds)."""
    assert opts.calib is not None
    cfg = opts.config
    t0 = time.perf_counter()
    depthwise = [lay for lay in layers if lay.kind == "depthwise_conv"]
    if cfg.equalization != "activations":
        depthwise = []
    smoothed = [lay for lay in layers if probed(lay)] if cfg.smoothing != "none" else []
    if not depthwise and not smoothed:
        return model, (0, 0.0)
    limits = [n for n in (opts.calib_limit, opts.equalization_probe) if n is not None]
    limit = min(limits) if limits else None
    count = 0

    def samples():  # noqa: ANN202 - streamed, counted
        nonlocal count
        for sample in iter_samples(opts.calib, model.inputs, opts.preprocess, limit):
            count += 1
            yield sample

    probes = probe_inputs(model, depthwise, samples(), rows=smoothed)
    percentile = 100.0 if cfg.calibration == "minmax" else cfg.percentile

    def rescalings(graph: onnx.ModelProto) -> list[Rescaling]:
        pairs: list[EqualizedPair] = []
        if depthwise:
            pairs = activation_equalization(graph, {k: p.ranges for k, p in probes.items()})
        elif cfg.equalization == "weights":
            pairs = weight_equalization(graph)
        if not smoothed:
            return list(pairs)
        equalized = apply_equalization(graph, pairs)
        return [*pairs, *input_smoothing(equalized, probes, cfg.smoothing, percentile)]

    model = import_onnx(opts.model, opts.input_shapes, rescalings)
    return model, (count, time.perf_counter() - t0)


def _read_plan(path: str) -> Plan:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise QuantuneError(f"{path}: cannot read plan ({exc.strerror})", file=path) from None
    return plan_from_json(text, path)


def build_with_fallbacks(engine: Engine, plan: Plan) -> tuple[bytes, Plan]:
    """Builds the plan's model; an int8 layer the backend fails on (the error's `node`) falls
    back to FP32 and the build is retried. Returns the vmfb and the final plan."""
    for _ in range(MAX_FALLBACKS + 1):
        try:
            return engine.build(plan), plan
        except QuantuneError as exc:
            failing = [lp for lp in plan.int8_layers if exc.node and lp.node == exc.node]
            if not failing:
                raise
            lp = failing[0]
            keep = [x.layer_id for x in plan.fp32_layers] + [lp.layer_id]
            reason = report.fallback_reason(engine.target.name)
            plan = with_precisions(plan, keep, reasons={lp.layer_id: reason})
    raise QuantuneError(
        f"compiling for {engine.target.name} still fails after {MAX_FALLBACKS} fallbacks"
    )


def run_job(
    opts: JobOptions,
    build: bool,
    progress: Callable[[str, int], None] | None = None,
    write: bool = True,
) -> JobResult:
    """compile (build=True) or analyze (build=False). Writes all outputs at once, or none (and
    with write=False, none: the result holds them)."""
    paths = output_paths(opts.output, build)
    for path in paths.values() if write else ():
        check_writable(path)
    if build and opts.target is None:
        raise QuantuneError("no target given")
    _check_options(opts)
    device = verify_device(opts.target) if build and opts.verify and opts.target else None
    if (
        build
        and opts.target
        and opts.target.driver == "vulkan"
        and opts.target.vulkan_storage == "i8"
    ):
        check_i8_storage(opts.target)
    saved = _read_plan(opts.plan) if opts.plan else None
    mode = "none" if saved else opts.config.equalization
    smoothing = "none" if saved else opts.config.smoothing
    model = import_onnx(
        opts.model,
        opts.input_shapes,
        saved.equalization if saved else weight_equalization if mode == "weights" else (),
    )
    layers = layer_table(model)
    notes = list(model.notes)
    if opts.calib is not None and not isinstance(opts.calib, str):
        opts = replace(opts, calib=samples_in_memory(opts.calib, model.inputs, notes))
    probe: tuple[int, float] | None = None
    if (mode == "activations" or smoothing != "none") and opts.calib is not None:
        model, probe = rescale_inputs(opts, model, layers)
        layers = layer_table(model)
    analysis: Analysis | None = None
    selection: Selection | None = None
    speeds: tuple[KindSpeed, ...] = ()
    if saved is not None:
        assert opts.plan is not None
        check_plan_matches(saved, layers, model.sha256, opts.plan)
        plan = saved
    else:
        plan, analysis, selection, speeds = _analysed_plan(opts, model, layers, progress, notes)

    files: dict[str, bytes | str] = {}
    latency: tuple[float, float] | None = None
    verification: Verification | None = None
    unit = "ms"
    if build:
        assert opts.target is not None
        engine = Engine(model, opts.target)
        vmfb, plan = build_with_fallbacks(engine, plan)
        files[paths["vmfb"]] = vmfb
        if device is not None:
            assert opts.calib is not None
            samples = iter_samples(opts.calib, model.inputs, opts.preprocess, opts.calib_limit)
            verification = verify_build(model, plan, opts.target, vmfb, samples, device)
        files[paths["sidecar"]] = sidecar_json(
            model,
            plan,
            engine.target,
            hashlib.sha256(vmfb).hexdigest(),
            opts.preprocess,
            verification,
        )
        if speeds:
            assert opts.calib is not None
            sample = next(iter(iter_samples(opts.calib, model.inputs, opts.preprocess, 1)))
            plan_cost, fp32_cost, unit = plan_latency(
                engine, vmfb, sample, estimator=_estimator(opts)
            )
            latency = (plan_cost, fp32_cost)
    outcome = JobOutcome(
        model_name=os.path.basename(opts.model),
        plan=plan,
        analysis=analysis,
        selection=selection,
        kind_speeds=speeds,
        latency=latency,
        latency_unit=unit,
        target_name=opts.target.name if opts.target else "",
        verification=verification,
        notes=tuple(notes),
        equalization_probe=probe,
    )
    files[paths["plan"]] = plan_to_json(plan, report.TOOL)
    files[paths["report_md"]] = report.report_markdown(outcome)
    files[paths["report_csv"]] = report.plan_csv(plan)
    files[paths["chart"]] = report.sensitivity_png(plan)
    if write:
        write_all_atomic(files)
    names = tuple(sorted(files))
    return JobResult(outcome, names, report.console_summary(outcome, names, write), files)

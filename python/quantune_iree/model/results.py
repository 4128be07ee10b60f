"""What each stage hands to the next and to the reports: calibration statistics, the two
passes' errors, the analysis, the ranking, the selection, speed probes and the job's outcome.
Frozen records; no stage logic."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .plan import Plan, SensitivityMetrics


@dataclass(frozen=True)
class TensorStats:
    """What calibration keeps of one tensor over the whole calibration set."""

    count: int
    min: float
    max: float
    mean: float
    std: float
    hist_range: float  # histogram covers [-hist_range, hist_range]
    histogram: np.ndarray = field(compare=False, repr=False)

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max))

    def bin_edges(self) -> np.ndarray:
        return np.linspace(-self.hist_range, self.hist_range, self.histogram.size + 1)


@dataclass(frozen=True)
class LayerCalibration:
    layer_id: int
    node: str
    input: TensorStats
    output: TensorStats
    # For bias correction (None when the layer's window is unknown): the input's window means
    # and the output's per-channel means over the calibration set (algo.bias_correction).
    input_means: np.ndarray | None = field(default=None, compare=False, repr=False)
    output_means: np.ndarray | None = field(default=None, compare=False, repr=False)
    # With GPTQ rounding: the input's second moment per group (algo.rounding.SecondMoments).
    hessian: np.ndarray | None = field(default=None, compare=False, repr=False)
    # An activation x activation matmul's second operand (Layer.activation_matmul).
    rhs: TensorStats | None = None


@dataclass(frozen=True)
class TapReference:
    """What the FP32 pass keeps so the INT8 pass can compare against it without a third pass:
    per tap, the values at a fixed, seeded set of element positions for every sample (all
    elements when the tap is small), and every sample's model outputs in full."""

    indices: Mapping[int, np.ndarray]  # tap result index → flat element positions
    values: Mapping[int, np.ndarray]  # tap result index → (samples, positions) float32
    outputs: tuple[tuple[np.ndarray, ...], ...]  # per sample, the model's own results


@dataclass(frozen=True)
class CalibrationResult:
    """The FP32 pass."""

    layers: tuple[LayerCalibration, ...]
    samples: int
    inference_passes: int  # full passes over the calibration set
    invocations: int  # runtime calls made
    num_taps: int
    compile_seconds: float
    run_seconds: float
    peak_rss_mb: float  # peak resident memory of this process so far
    # Where each layer's taps are in the FP32 tapped model, and the kept reference values.
    input_tap: Mapping[int, int] = field(default_factory=dict)
    output_tap: Mapping[int, int] = field(default_factory=dict)
    reference: TapReference | None = None


@dataclass(frozen=True)
class LayerError:
    layer_id: int
    node: str
    input_sqnr_db: float  # of the layer's input in the INT8 pass vs FP32
    output_sqnr_db: float
    input_mse: float
    output_mse: float
    # The same means as LayerCalibration's, in the INT8 pass (None when not measured).
    input_means: np.ndarray | None = field(default=None, compare=False, repr=False)
    output_means: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Int8PassResult:
    layers: tuple[LayerError, ...]
    output_sqnr_db: float  # the model's own outputs, INT8 vs FP32, over all samples
    # Of the primary output (ImportedModel.primary_output): top-1 agreement, meaningful for a
    # classifier, and the cosine similarity of each sample's output to FP32's, for an encoder.
    top1_agreement: float
    samples: int
    invocations: int
    compile_seconds: float
    run_seconds: float
    cosine: tuple[float, ...] = ()  # per sample, in calibration order


@dataclass(frozen=True)
class LayerMetrics:
    layer_id: int
    node: str
    kind: str
    metrics: SensitivityMetrics


@dataclass(frozen=True)
class Analysis:
    """Everything the ranking and the plan need; no tensors are kept."""

    layers: tuple[LayerMetrics, ...]
    calibration: CalibrationResult
    int8_plan: Plan  # the all-int8 plan the INT8 pass ran (scales for every layer)
    int8: Int8PassResult
    inference_passes: int  # full passes over the calibration set
    seconds: float


@dataclass(frozen=True)
class RankedLayer:
    layer_id: int
    node: str
    score: float  # higher = more sensitive
    rank: int  # 0 = most sensitive


@dataclass(frozen=True)
class Selection:
    fp32: tuple[int, ...]  # layer ids kept FP32, most sensitive first
    extra_passes: int  # inference passes spent beyond the analysis's two
    output_sqnr_db: float | None  # on the calibration set, when it was measured
    rule: str  # how the set was chosen, for the report


# A kind counts as slower in INT8 only beyond this relative margin (timing noise).
SPEED_MARGIN = 0.02


# Units of a speed measurement: milliseconds timed on this host, or millions of cycles the
# Cortex-A53 model (a53sim) estimates for one run (compute only: an estimate, not a timing).
COST_UNITS = {"ms": "ms", "Mcycles": "M cycles (A53 estimate)"}


def format_cost(value: float, unit: str) -> str:
    return f"{value:.2f} {COST_UNITS[unit]}"


@dataclass(frozen=True)
class KindSpeed:
    """Model cost with one layer kind INT8 vs FP32 (kind "all": the whole model), in `unit`."""

    kind: str
    layers: int
    int8_cost: float  # model cost with these layers INT8 (all others INT8 too)
    fp32_cost: float  # ... with these layers FP32
    unit: str = "ms"

    @property
    def int8_slower(self) -> bool:
        return self.fp32_cost < self.int8_cost * (1 - SPEED_MARGIN)


@dataclass(frozen=True)
class LayerCheck:
    """One layer of a verified Vulkan build, on the sample where its outputs differed most."""

    layer_id: int
    label: str
    precision: str
    # The device's layer output against the host's result of this layer alone on the device's
    # own input to it: whether the layer computes correctly (nan: not checked alone).
    local_db: float
    # The device's layer output against the host build's: where the two runs drift apart.
    vs_host_db: float


@dataclass(frozen=True)
class Verification:
    """A Vulkan build run on this machine's Vulkan device against the host build of its plan."""

    device: str
    samples: int
    output_sqnr_db: float  # the worst sample's, device against host
    top1_same: int  # samples whose first output has the same argmax on both
    threshold_db: float
    layers: tuple[LayerCheck, ...] = ()  # checked layer by layer when the outputs differ

    @property
    def outputs_agree(self) -> bool:
        return self.output_sqnr_db >= self.threshold_db and self.top1_same == self.samples


@dataclass(frozen=True)
class JobOutcome:
    """What a compile or analyze job found, for the reports (everything but the file list)."""

    model_name: str
    plan: Plan
    analysis: Analysis | None = None
    selection: Selection | None = None
    kind_speeds: tuple[KindSpeed, ...] = ()
    latency: tuple[float, float] | None = None  # (plan, FP32) cost on the target
    latency_unit: str = "ms"
    target_name: str = ""
    verification: Verification | None = None  # --verify of a Vulkan build
    notes: tuple[str, ...] = ()  # what was assumed about the model or the data, one line each
    # Activation equalization's probe: (calibration samples run, seconds); None when not run.
    equalization_probe: tuple[int, float] | None = None

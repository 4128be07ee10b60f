"""The FP32 pass: run the tapped FP32 model once over the calibration set, streaming every tap
into an observer. One full inference pass; only the observers' statistics are kept."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .compile import compile_vmfb
from .errors import QuantuneError
from .importer import ImportedModel
from .layers import Layer, layer_table
from .observers import DEFAULT_BINS, HistogramObserver, TensorStats
from .runtime import Runner
from .taps import tap_model
from .targets import Target, get_target


@dataclass(frozen=True)
class LayerCalibration:
    layer_id: int
    node: str
    input: TensorStats
    output: TensorStats


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


def sample_positions(size: int, limit: int, seed: int) -> np.ndarray:
    """`limit` distinct flat positions of a tensor of `size` elements (all when it is small)."""
    if size <= limit:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, limit, replace=False))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_fp32_pass(
    model: ImportedModel,
    samples: Iterable[Sequence[np.ndarray]],
    *,
    target: Target | None = None,
    layers: Sequence[Layer] | None = None,
    bins: int = DEFAULT_BINS,
    reference_elements: int | None = 2048,
    progress: Callable[[int], None] | None = None,
) -> CalibrationResult:
    """Calibrates activation ranges of `layers` (all by default) over `samples`.

    With `reference_elements`, also keeps that many values per tap and sample (and the model
    outputs) for the INT8 pass; memory for it is samples × taps × reference_elements × 4 bytes.
    """
    target = target or get_target("host")
    layers = tuple(layers) if layers is not None else layer_table(model)
    if not layers:
        raise QuantuneError(
            f"{model.path}: the model has no quantizable layer (conv, matmul, Gemm)"
        )
    t0 = time.perf_counter()
    tapped = tap_model(model, [layer.id for layer in layers])
    runner = Runner(
        compile_vmfb(tapped.bytecode, target, what="tapped FP32 model"),
        tapped.taps.function,
        target.driver,
    )
    compile_seconds = time.perf_counter() - t0

    observers = {r: HistogramObserver(bins) for r in tapped.taps.tap_results}
    positions: dict[int, np.ndarray] = {}
    kept: dict[int, list[np.ndarray]] = {r: [] for r in observers}
    model_outputs: list[tuple[np.ndarray, ...]] = []
    t1 = time.perf_counter()
    count = 0
    for sample in samples:
        outputs = runner(sample)
        for index, observer in observers.items():
            try:
                observer.observe(outputs[index])
            except ValueError as exc:
                raise QuantuneError(
                    f"sample {count}: tap {index} of the FP32 pass: {exc}"
                ) from None
            if reference_elements:
                if index not in positions:
                    positions[index] = sample_positions(
                        outputs[index].size, reference_elements, seed=index
                    )
                kept[index].append(outputs[index].reshape(-1)[positions[index]].copy())
        if reference_elements:
            model_outputs.append(tuple(outputs[: tapped.taps.num_original_results]))
        del outputs
        count += 1
        if progress:
            progress(count)
    if count == 0:
        raise QuantuneError("the calibration set is empty")
    stats = {r: o.finalize() for r, o in observers.items()}
    return CalibrationResult(
        layers=tuple(
            LayerCalibration(
                layer_id=layer.id,
                node=layer.node,
                input=stats[tapped.taps.input_result[layer.id]],
                output=stats[tapped.taps.output_result[layer.id]],
            )
            for layer in layers
        ),
        samples=count,
        inference_passes=1,
        invocations=runner.invocations,
        num_taps=tapped.taps.num_taps,
        compile_seconds=compile_seconds,
        run_seconds=time.perf_counter() - t1,
        peak_rss_mb=peak_rss_mb(),
        input_tap=dict(tapped.taps.input_result),
        output_tap=dict(tapped.taps.output_result),
        reference=TapReference(
            indices=positions,
            values={r: np.stack(v) for r, v in kept.items()},
            outputs=tuple(model_outputs),
        )
        if reference_elements
        else None,
    )

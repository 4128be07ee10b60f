"""The FP32 pass: run the tapped FP32 model once over the calibration set, streaming every tap
into an observer. One full inference pass; only the observers' statistics are kept."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

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
class CalibrationResult:
    layers: tuple[LayerCalibration, ...]
    samples: int
    inference_passes: int  # full passes over the calibration set
    invocations: int  # runtime calls made
    num_taps: int
    compile_seconds: float
    run_seconds: float
    peak_rss_mb: float  # peak resident memory of this process so far


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_fp32_pass(
    model: ImportedModel,
    samples: Iterable[Sequence[np.ndarray]],
    *,
    target: Target | None = None,
    layers: Sequence[Layer] | None = None,
    bins: int = DEFAULT_BINS,
    progress: Callable[[int], None] | None = None,
) -> CalibrationResult:
    """Calibrates activation ranges of `layers` (all by default) over `samples`."""
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
    )

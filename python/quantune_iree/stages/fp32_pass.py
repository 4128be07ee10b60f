"""The FP32 pass: run the tapped FP32 model once over the calibration set, streaming every tap
into an observer. One full inference pass; only the observers' statistics are kept."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..algo.bias_correction import means_accumulators
from ..algo.observers import DEFAULT_BINS, HistogramObserver
from ..algo.rounding import SecondMoments
from ..backend.engine import Engine
from ..backend.targets import get_target
from ..errors import QuantuneError
from ..ir.layers import layer_table
from ..ir.smooth import InputProbe
from ..model.graph import ImportedModel
from ..model.layer import Layer
from ..model.results import CalibrationResult, LayerCalibration, TapReference
from ..model.target import Target

# The probe's sampled input positions per layer: per calibration sample, and in all.
PROBE_ROWS_PER_SAMPLE = 64
PROBE_ROWS = 2048


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
    second_moments: bool = False,
    progress: Callable[[int], None] | None = None,
) -> CalibrationResult:
    """Calibrates activation ranges of `layers` (all by default) over `samples`, with each
    layer's input window means and output channel means (for bias correction) and, with
    `second_moments`, its input's second moment (for GPTQ rounding, algo.rounding).

    With `reference_elements`, also keeps that many values per tap and sample (and the model
    outputs) for the INT8 pass; memory for it is samples × taps × reference_elements × 4 bytes.
    """
    target = target or get_target("host")
    layers = tuple(layers) if layers is not None else layer_table(model)
    if not layers:
        raise QuantuneError(
            f"{model.path}: the model has no quantizable layer (conv, matmul, Gemm)",
            file=model.path,
        )
    runner = Engine(model, target).load(
        taps=[layer.id for layer in layers], what="tapped FP32 model"
    )
    taps = runner.taps
    assert taps is not None

    observers = {r: HistogramObserver(bins) for r in taps.tap_results}
    positions: dict[int, np.ndarray] = {}
    kept: dict[int, list[np.ndarray]] = {r: [] for r in observers}
    means = means_accumulators(layers)
    moments = (
        {lid: SecondMoments(acc.layer) for lid, acc in means.items()} if second_moments else {}
    )
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
        for lid, acc in means.items():
            acc.add(outputs[taps.input_result[lid]], outputs[taps.output_result[lid]])
        for lid, mom in moments.items():
            mom.add(outputs[taps.input_result[lid]])
        if reference_elements:
            model_outputs.append(tuple(outputs[: taps.num_original_results]))
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
                input=stats[taps.input_result[layer.id]],
                output=stats[taps.output_result[layer.id]],
                input_means=means[layer.id].means()[0] if layer.id in means else None,
                output_means=means[layer.id].means()[1] if layer.id in means else None,
                hessian=moments[layer.id].hessian() if layer.id in moments else None,
                rhs=stats[taps.weight_result[layer.id]] if layer.id in taps.weight_result else None,
            )
            for layer in layers
        ),
        samples=count,
        inference_passes=1,
        invocations=runner.invocations,
        num_taps=taps.num_taps,
        compile_seconds=runner.compile_seconds,
        run_seconds=time.perf_counter() - t1,
        peak_rss_mb=peak_rss_mb(),
        input_tap=dict(taps.input_result),
        output_tap=dict(taps.output_result),
        reference=TapReference(
            indices=positions,
            values={r: np.stack(v) for r, v in kept.items()},
            outputs=tuple(model_outputs),
        )
        if reference_elements
        else None,
    )


def probe_inputs(
    model: ImportedModel,
    layers: Sequence[Layer],
    samples: Iterable[Sequence[np.ndarray]],
    *,
    rows: Sequence[Layer] = (),
    target: Target | None = None,
) -> dict[str, InputProbe]:
    """max |x_c| over `samples` of each input channel (axis 1) of `layers` and `rows`, by node
    name: what activation equalization and input smoothing even out (ir.equalize, ir.smooth);
    for the `rows` layers also input positions sampled for smoothing's simulated error
    (PROBE_ROWS_PER_SAMPLE each, PROBE_ROWS in all). A probe over a few samples, not a pass."""
    wanted = {layer.id: layer for layer in (*layers, *rows)}
    sampled = {layer.id for layer in rows}
    runner = Engine(model, target or get_target("host")).load(
        taps=sorted(wanted), what="equalization probe"
    )
    taps = runner.taps
    assert taps is not None
    ranges: dict[int, list[np.ndarray]] = {i: [] for i in wanted}
    kept: dict[int, list[np.ndarray]] = {i: [] for i in sampled}
    origin: dict[int, list[np.ndarray]] = {i: [] for i in sampled}
    counts = dict.fromkeys(sampled, 0)
    rng = np.random.default_rng(0)
    for n, sample in enumerate(samples):
        outputs = runner(sample)
        for i in wanted:
            x = np.moveaxis(outputs[taps.input_result[i]], 1, -1)
            x = x.reshape(-1, x.shape[-1])
            ranges[i].append(np.abs(x).max(axis=0))
            if i in sampled and counts[i] < PROBE_ROWS:
                take = min(PROBE_ROWS_PER_SAMPLE, PROBE_ROWS - counts[i], len(x))
                kept[i].append(x[rng.choice(len(x), take, replace=False)].astype(np.float32))
                origin[i].append(np.full(take, n))
                counts[i] += take
    out = {}
    for i, r in ranges.items():
        if not r:
            continue
        rows = np.concatenate(kept[i]) if kept.get(i) else np.zeros((0, r[0].size), np.float32)
        where = np.concatenate(origin[i]) if origin.get(i) else np.zeros(0, np.int64)
        out[wanted[i].node] = InputProbe(np.stack(r), rows, where)
    return out

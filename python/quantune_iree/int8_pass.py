"""The INT8 pass: the fully INT8, tapped model run once over the calibration set, each tap
compared with the FP32 pass's reference values for the same sample. Together with the FP32
pass, that is two full inference passes for the whole sensitivity analysis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .calibrate import CalibrationResult
from .compile import compile_vmfb
from .errors import QuantuneError
from .importer import ImportedModel
from .metrics import ErrorAccumulator, top1_agreement
from .plan import Plan
from .quantize import quantize_model
from .runtime import Runner
from .taps import tap_model
from .targets import Target, get_target


@dataclass(frozen=True)
class LayerError:
    layer_id: int
    node: str
    input_sqnr_db: float  # of the layer's input in the INT8 pass vs FP32
    output_sqnr_db: float
    input_mse: float
    output_mse: float


@dataclass(frozen=True)
class Int8PassResult:
    layers: tuple[LayerError, ...]
    output_sqnr_db: float  # the model's own outputs, INT8 vs FP32, over all samples
    top1_agreement: float  # of the first output, when it is a classifier
    samples: int
    invocations: int
    compile_seconds: float
    run_seconds: float


def run_int8_pass(
    model: ImportedModel,
    plan: Plan,
    calibration: CalibrationResult,
    samples: Iterable[Sequence[np.ndarray]],
    *,
    target: Target | None = None,
    progress: Callable[[int], None] | None = None,
) -> Int8PassResult:
    """Runs the plan's model (all layers int8 for the analysis) against the FP32 references."""
    ref = calibration.reference
    if ref is None:
        raise QuantuneError("the FP32 pass kept no reference values (reference_elements=None)")
    target = target or get_target("host")
    t0 = time.perf_counter()
    layer_ids = [lc.layer_id for lc in calibration.layers]
    tapped = tap_model(replace(model, bytecode=quantize_model(model, plan)), layer_ids)
    runner = Runner(
        compile_vmfb(tapped.bytecode, target, what="tapped INT8 model"),
        tapped.taps.function,
        target.driver,
    )
    compile_seconds = time.perf_counter() - t0

    acc_in = {i: ErrorAccumulator() for i in layer_ids}
    acc_out = {i: ErrorAccumulator() for i in layer_ids}
    out_acc = ErrorAccumulator()
    ref_logits, int8_logits = [], []
    t1 = time.perf_counter()
    count = 0
    for sample in samples:
        if count >= len(ref.outputs):
            raise QuantuneError("the INT8 pass got more samples than the FP32 pass")
        outputs = runner(sample)
        for lid in layer_ids:
            for acc, fp32_tap, int8_tap in (
                (acc_in[lid], calibration.input_tap[lid], tapped.taps.input_result[lid]),
                (acc_out[lid], calibration.output_tap[lid], tapped.taps.output_result[lid]),
            ):
                got = outputs[int8_tap].reshape(-1)[ref.indices[fp32_tap]]
                acc.add(ref.values[fp32_tap][count], got)
        out_acc.add(ref.outputs[count][0], outputs[0])
        ref_logits.append(ref.outputs[count][0])
        int8_logits.append(outputs[0])
        del outputs
        count += 1
        if progress:
            progress(count)
    if count != len(ref.outputs):
        raise QuantuneError(
            f"the INT8 pass got {count} samples, the FP32 pass {len(ref.outputs)}: "
            "both must see the same calibration set"
        )
    nodes = {lc.layer_id: lc.node for lc in calibration.layers}
    return Int8PassResult(
        layers=tuple(
            LayerError(
                lid,
                nodes[lid],
                acc_in[lid].sqnr_db,
                acc_out[lid].sqnr_db,
                acc_in[lid].mse,
                acc_out[lid].mse,
            )
            for lid in layer_ids
        ),
        output_sqnr_db=out_acc.sqnr_db,
        top1_agreement=top1_agreement(np.stack(ref_logits), np.stack(int8_logits)),
        samples=count,
        invocations=runner.invocations,
        compile_seconds=compile_seconds,
        run_seconds=time.perf_counter() - t1,
    )

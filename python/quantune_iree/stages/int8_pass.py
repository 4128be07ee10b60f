"""The INT8 pass: the fully INT8, tapped model run once over the calibration set, each tap
compared with the FP32 pass's reference values for the same sample. Together with the FP32
pass, that is two full inference passes for the whole sensitivity analysis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..algo.bias_correction import means_accumulators
from ..algo.metrics import ErrorAccumulator, cosine_similarities, top1_agreement
from ..backend.engine import Engine
from ..backend.targets import get_target
from ..errors import QuantuneError
from ..model.graph import ImportedModel
from ..model.layer import Layer
from ..model.plan import Plan
from ..model.results import CalibrationResult, Int8PassResult, LayerError
from ..model.target import Target


def run_int8_pass(
    model: ImportedModel,
    plan: Plan,
    calibration: CalibrationResult,
    samples: Iterable[Sequence[np.ndarray]],
    *,
    target: Target | None = None,
    layers: Sequence[Layer] = (),
    progress: Callable[[int], None] | None = None,
) -> Int8PassResult:
    """Runs the plan's model (all layers int8 for the analysis) against the FP32 references;
    for `layers` that can be bias-corrected, also their input and output means."""
    ref = calibration.reference
    if ref is None:
        raise QuantuneError("the FP32 pass kept no reference values (reference_elements=None)")
    target = target or get_target("host")
    layer_ids = [lc.layer_id for lc in calibration.layers]
    runner = Engine(model, target).load(plan, taps=layer_ids, what="tapped INT8 model")
    taps = runner.taps
    assert taps is not None

    acc_in = {i: ErrorAccumulator() for i in layer_ids}
    acc_out = {i: ErrorAccumulator() for i in layer_ids}
    out_acc = ErrorAccumulator()
    primary = model.primary_output
    means = means_accumulators([lay for lay in layers if lay.id in acc_in])
    ref_logits, int8_logits = [], []
    t1 = time.perf_counter()
    count = 0
    for sample in samples:
        if count >= len(ref.outputs):
            raise QuantuneError("the INT8 pass got more samples than the FP32 pass")
        outputs = runner(sample)
        for lid in layer_ids:
            for acc, fp32_tap, int8_tap in (
                (acc_in[lid], calibration.input_tap[lid], taps.input_result[lid]),
                (acc_out[lid], calibration.output_tap[lid], taps.output_result[lid]),
            ):
                got = outputs[int8_tap].reshape(-1)[ref.indices[fp32_tap]]
                acc.add(ref.values[fp32_tap][count], got)
        for lid, macc in means.items():
            macc.add(outputs[taps.input_result[lid]], outputs[taps.output_result[lid]])
        out_acc.add(ref.outputs[count][primary], outputs[primary])
        ref_logits.append(ref.outputs[count][primary])
        int8_logits.append(outputs[primary])
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
                *(means[lid].means() if lid in means else (None, None)),
            )
            for lid in layer_ids
        ),
        output_sqnr_db=out_acc.sqnr_db,
        top1_agreement=top1_agreement(np.stack(ref_logits), np.stack(int8_logits)),
        cosine=cosine_similarities(np.stack(ref_logits), np.stack(int8_logits)),
        samples=count,
        invocations=runner.invocations,
        compile_seconds=runner.compile_seconds,
        run_seconds=time.perf_counter() - t1,
    )

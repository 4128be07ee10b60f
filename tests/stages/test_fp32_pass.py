"""The FP32 pass: one pass over the data, observers fed with exactly onnxruntime's tensors."""

from __future__ import annotations

import models
import numpy as np
import onnxruntime as ort
import pytest
from quantune_iree.errors import QuantuneError
from quantune_iree.io.dataset import iter_samples
from quantune_iree.ir.layers import layer_table
from quantune_iree.stages.fp32_pass import run_fp32_pass


def test_fp32_pass_ranges_match_onnxruntime(conv_stack_model, tmp_path) -> None:
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((1, 4, 10, 10)).astype(np.float32) * s for s in (1.0, 3.0, 0.5)]
    for i, x in enumerate(xs):
        np.save(tmp_path / f"s{i}.npy", x)
    result = run_fp32_pass(conv_stack_model, iter_samples(str(tmp_path), conv_stack_model.inputs))
    assert result.samples == 3 and result.invocations == 3 and result.inference_passes == 1
    assert result.num_taps == 10 and result.peak_rss_mb > 0

    onnx_model = models.conv_stack()
    nodes = {n.name: n for n in onnx_model.graph.node}
    names = sorted({t for n in nodes.values() for t in (n.input[0], n.output[0])})
    session = ort.InferenceSession(models.with_outputs(onnx_model, names).SerializeToString())
    outs = [
        dict(
            zip([o.name for o in session.get_outputs()], session.run(None, {"x": x}), strict=True),
            x=x,
        )
        for x in xs
    ]
    layers = {lay.id: lay for lay in layer_table(conv_stack_model)}
    for lc in result.layers:
        node = nodes[layers[lc.layer_id].node]
        for stats, tensor in ((lc.input, node.input[0]), (lc.output, node.output[0])):
            values = np.concatenate([o[tensor].ravel() for o in outs])
            assert stats.count == values.size
            assert stats.min == pytest.approx(float(values.min()), rel=1e-5, abs=1e-6)
            assert stats.max == pytest.approx(float(values.max()), rel=1e-5, abs=1e-6)


def test_empty_sample_stream_is_refused(conv_stack_model) -> None:
    with pytest.raises(QuantuneError, match="the calibration set is empty"):
        run_fp32_pass(conv_stack_model, iter([]))

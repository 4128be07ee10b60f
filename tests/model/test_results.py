"""The records: a layer's quantizability, statistics and the speed margin."""

from __future__ import annotations

import numpy as np
from quantune_iree.model.layer import Layer
from quantune_iree.model.results import KindSpeed, TensorStats


def _layer(weight: np.ndarray | None, precision: str = "fp32") -> Layer:
    return Layer(3, "", "Conv", "conv", "linalg.conv_2d_nchw_fchw", precision, (1,), (1,), (1,),
                 weight is not None, (0,), (1,), weight)  # fmt: skip


def test_a_layer_says_why_it_cannot_be_int8() -> None:
    assert _layer(np.ones(2, np.float32)).unquantizable_reason == ""
    assert _layer(np.ones(2, np.float32), "int8").unquantizable_reason == "already quantized"
    assert "f32 constant" in _layer(None).unquantizable_reason
    assert "f32 constant" in _layer(np.ones(2, np.float16)).unquantizable_reason
    assert _layer(None).label == "layer3"


def test_tensor_stats_absmax_and_edges() -> None:
    s = TensorStats(4, -3.0, 2.0, 0.0, 1.0, 4.0, np.zeros(8, np.int64))
    assert s.absmax == 3.0
    assert s.bin_edges()[0] == -4.0 and s.bin_edges()[-1] == 4.0 and s.bin_edges().size == 9


def test_int8_counts_as_slower_only_beyond_the_noise_margin() -> None:
    assert KindSpeed("conv", 1, int8_cost=10.0, fp32_cost=9.0).int8_slower
    assert not KindSpeed("conv", 1, int8_cost=10.0, fp32_cost=9.9).int8_slower
    assert not KindSpeed("conv", 1, int8_cost=10.0, fp32_cost=12.0).int8_slower

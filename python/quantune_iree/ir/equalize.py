"""Cross-layer equalization on the ONNX graph, before import: for a conv A whose output reaches
only conv B through a scale-equivariant activation, output channel c of A is divided by s_c and
input channel c of B multiplied by it, which leaves the model's function unchanged (Nagel et al.,
"Data-Free Quantization", 2019). Two ways to choose s:

- weights (DFQ): even out A's output-channel and B's input-channel weight ranges;
- activations: for B depthwise, even out the channel ranges of the activation between A and B,
  measured on calibration data. With per-channel weights on both sides (A's rows and the
  depthwise B's rows are each scaled as a whole) no weight's quantization changes at all: what
  changes is that B's per-tensor int8 input now gives every channel the whole grid, as a
  per-channel activation scale would.

Between A and B there may be: nothing, Relu (relu(x / s) = relu(x) / s for s > 0), a zero Pad,
and Clip(0, hi). Clip is not equivariant, so it is *rewritten, not approximated*: Clip(0, hi)
becomes Max(x, 0) then Min(x, hi / s_c) with a per-channel bound, which computes exactly
clip(x, 0, hi) / s_c. The scales are decided here in Python and recorded in the plan, so a plan
re-applies the same rewrite to the same model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..model.plan import EqualizedPair

# Scales are kept within this factor of 1, so no channel is scaled into float underflow.
MAX_SCALE = 1e4
# Activation equalization's exponent. Measured on the dev images (full INT8, the default
# configuration otherwise): strength 1 gives MobileNetV2 18.2 dB (from 16.2) but costs
# EfficientNet-Lite0 1.2 dB (22.0 -> 20.8); 0.5 gives 18.0 dB and 22.0 dB.
ACTIVATION_STRENGTH = 0.5


@dataclass(frozen=True)
class _Chain:
    first: onnx.NodeProto
    between: tuple[onnx.NodeProto, ...]
    second: onnx.NodeProto


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            out[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return out


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _equivariant(node: onnx.NodeProto, consts: Mapping[str, np.ndarray]) -> bool:
    """Whether node(x / s) can be made node(x) / s per channel (s > 0)."""
    if node.op_type == "Relu":
        return True
    if node.op_type == "Pad":
        mode = _attr(node, "mode", b"constant")
        value = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else 0.0
        return mode in (b"constant", "constant") and value is not None and float(value) == 0.0
    if node.op_type == "Clip" and len(node.input) == 3:
        lo, hi = consts.get(node.input[1]), consts.get(node.input[2])
        return (
            lo is not None
            and hi is not None
            and lo.size == 1
            and hi.size == 1
            and (float(lo) == 0.0 and float(hi) > 0.0)
        )
    return False


def _conv_ok(node: onnx.NodeProto, consts: Mapping[str, np.ndarray]) -> bool:
    return node.op_type == "Conv" and len(node.input) >= 2 and node.input[1] in consts


def find_chains(model: onnx.ModelProto) -> list[_Chain]:
    """Every conv → equivariant ops → conv chain whose intermediate tensors have one consumer
    each and are no graph output, with plain (group 1) or depthwise second convs."""
    consts = _constants(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    chains = []
    for first in model.graph.node:
        if not _conv_ok(first, consts) or consts[first.input[1]].ndim != 4:
            continue
        between: list[onnx.NodeProto] = []
        tensor = first.output[0]
        while True:
            users = consumers.get(tensor, [])
            if tensor in outputs or len(users) != 1:
                break
            user = users[0]
            if _conv_ok(user, consts) and user.input[0] == tensor:
                w2 = consts[user.input[1]]
                group = int(_attr(user, "group", 1))
                if group == 1 or (w2.shape[1] == 1 and group == w2.shape[0]):
                    chains.append(_Chain(first, tuple(between), user))
                break
            if not _equivariant(user, consts) or user.input[0] != tensor:
                break
            between.append(user)
            tensor = user.output[0]
    return chains


def _in_channel_ranges(w2: np.ndarray, depthwise: bool) -> np.ndarray:
    if depthwise:
        return np.abs(w2).reshape(w2.shape[0], -1).max(axis=1)
    return np.abs(w2).transpose(1, 0, *range(2, w2.ndim)).reshape(w2.shape[1], -1).max(axis=1)


def pair_scales(w1: np.ndarray, w2: np.ndarray, depthwise: bool) -> np.ndarray:
    """DFQ's s_c = sqrt(r1_c / r2_c): afterwards A's output channel c and B's input channel c
    have the same weight range sqrt(r1_c · r2_c)."""
    r1 = np.abs(w1).reshape(w1.shape[0], -1).max(axis=1).astype(np.float64)
    r2 = _in_channel_ranges(w2, depthwise).astype(np.float64)
    s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.maximum(r2, 1e-30)), 1.0)
    return np.clip(s, 1.0 / MAX_SCALE, MAX_SCALE)


def _rescaled(
    model: onnx.ModelProto, pairs: Sequence[EqualizedPair], consts: dict[str, np.ndarray]
) -> None:
    """Folds each pair's scales into `consts` (weights and biases, as copies)."""
    nodes = {n.name: n for n in model.graph.node}
    for pair in pairs:
        a, b = nodes[pair.first], nodes[pair.second]
        s = np.asarray(pair.scales, np.float64)
        w1 = consts[a.input[1]].astype(np.float64)
        consts[a.input[1]] = (w1 / s.reshape(-1, *[1] * (w1.ndim - 1))).astype(np.float32)
        if len(a.input) > 2 and a.input[2]:
            consts[a.input[2]] = (consts[a.input[2]].astype(np.float64) / s).astype(np.float32)
        w2 = consts[b.input[1]].astype(np.float64)
        shape = [1] * w2.ndim
        depthwise = int(_attr(b, "group", 1)) != 1
        shape[0 if depthwise else 1] = s.size
        consts[b.input[1]] = (w2 * s.reshape(shape)).astype(np.float32)


def weight_equalization(model: onnx.ModelProto, iterations: int = 4) -> list[EqualizedPair]:
    """The scales for every equalizable pair, iterated so chains (A → B → C) settle; the
    returned scales are each pair's product over the iterations. Does not change `model`."""
    chains = find_chains(model)
    consts = _constants(model)
    total = {c.first.name: np.ones(consts[c.first.input[1]].shape[0]) for c in chains}
    for _ in range(iterations):
        for chain in chains:
            depthwise = int(_attr(chain.second, "group", 1)) != 1
            s = pair_scales(consts[chain.first.input[1]], consts[chain.second.input[1]], depthwise)
            pair = EqualizedPair(chain.first.name, chain.second.name, tuple(s))
            _rescaled(model, [pair], consts)
            total[chain.first.name] *= s
    return [
        EqualizedPair(c.first.name, c.second.name, tuple(float(v) for v in total[c.first.name]))
        for c in chains
    ]


def depthwise_pairs(model: onnx.ModelProto) -> dict[str, str]:
    """Second conv → first conv, for every chain whose second conv is depthwise."""
    consts = _constants(model)
    return {
        c.second.name: c.first.name
        for c in find_chains(model)
        if int(_attr(c.second, "group", 1)) != 1 and consts[c.second.input[1]].shape[1] == 1
    }


def activation_equalization(
    model: onnx.ModelProto,
    channel_ranges: Mapping[str, np.ndarray],
    strength: float = ACTIVATION_STRENGTH,
) -> list[EqualizedPair]:
    """For each depthwise conv B (by node name) with the channel ranges max|x_c| of its input
    measured: s_c = (r_c / max(r))^strength; strength 1 gives every channel of B's input the
    same range, 0.5 closes half the gap in log scale. A channel never seen non-zero keeps 1."""
    pairs = []
    for second, first in depthwise_pairs(model).items():
        r = channel_ranges.get(second)
        if r is None or not np.any(r > 0):
            continue
        r = np.asarray(r, np.float64)
        s = np.where(r > 0, np.clip((r / r.max()) ** strength, 1.0 / MAX_SCALE, 1.0), 1.0)
        pairs.append(EqualizedPair(first, second, tuple(float(v) for v in s)))
    return pairs


def apply_equalization(model: onnx.ModelProto, pairs: Sequence[EqualizedPair]) -> onnx.ModelProto:
    """A copy of `model` with `pairs` applied: weights and biases rescaled, each Clip(0, hi)
    between a pair rewritten into Max(x, 0) and a per-channel Min. Raises ValueError when a pair
    names nodes that are not such a chain."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    chains = {(c.first.name, c.second.name): c for c in find_chains(out)}
    consts = _constants(out)
    for pair in pairs:
        if (pair.first, pair.second) not in chains:
            raise ValueError(f"'{pair.first}' → '{pair.second}' is no equalizable conv pair")
        if len(pair.scales) != consts[chains[(pair.first, pair.second)].first.input[1]].shape[0]:
            raise ValueError(f"'{pair.first}': {len(pair.scales)} scales for its channels")
    touched = dict(consts)
    _rescaled(out, pairs, touched)
    written = {k for k in touched if touched[k] is not consts[k]}
    for init in out.graph.initializer:
        if init.name in written:
            init.CopyFrom(numpy_helper.from_array(touched[init.name], init.name))
    for pair in pairs:
        _rewrite_clips(out, chains[(pair.first, pair.second)], np.asarray(pair.scales), consts)
    return out


def _rewrite_clips(
    model: onnx.ModelProto, chain: _Chain, scales: np.ndarray, consts: Mapping[str, np.ndarray]
) -> None:
    graph = model.graph
    for clip in chain.between:
        if clip.op_type != "Clip":
            continue
        hi = float(consts[clip.input[2]])
        bound_name = f"{clip.name}/quantune_equalized_max"
        zero_name = f"{clip.name}/quantune_zero"
        bound = (hi / scales).astype(np.float32).reshape(1, -1, *[1] * 2)
        graph.initializer.extend(
            [
                numpy_helper.from_array(bound, bound_name),
                numpy_helper.from_array(np.zeros((), np.float32), zero_name),
            ]
        )
        mid = f"{clip.output[0]}/quantune_relu"
        index = list(graph.node).index(clip)
        new = [
            onnx.helper.make_node(
                "Max", [clip.input[0], zero_name], [mid], name=f"{clip.name}_max"
            ),
            onnx.helper.make_node("Min", [mid, bound_name], [clip.output[0]], name=clip.name),
        ]
        graph.node.remove(clip)
        for i, node in enumerate(new):
            graph.node.insert(index + i, node)

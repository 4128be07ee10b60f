"""`--verify`: a Vulkan build run on this machine's Vulkan device against the host build of the
same plan, before anything is written.

1. The device must run kernels of the build's subgroup size (else it proves nothing: kernels
   built for 16 lanes are wrong on 8-lane lavapipe for that reason alone).
2. Outputs: on up to MAX_SAMPLES calibration samples, each output's SQNR against the host build
   must reach MIN_SQNR_DB and the first output's top-1 must match.
3. When they do not, layer by layer on the worst sample: every layer's device output is compared
   with the host's result of that layer *alone* on the device's own input to it (a model of the
   layers side by side, each node with its weights, built for the host with the same plan). A
   layer under MIN_SQNR_DB there computes wrongly on the device: the build is refused, naming it.
   If every layer passes, the outputs differ only because FP32 layers round differently on the
   two devices and INT8 rounding downstream amplifies it (each run is as accurate as the other);
   the verification passes and says so, naming the layer where the two runs drift apart.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import numpy as np
import onnx

from ..algo.metrics import sqnr
from ..backend.compile import compile_vmfb, subgroup_sizes
from ..backend.engine import Engine
from ..backend.runtime import Runner
from ..backend.targets import get_target
from ..backend.vulkan_device import VulkanDevice, vulkan_devices
from ..errors import QuantuneError
from ..ir.importer import import_onnx, load_onnx
from ..ir.smooth import apply_rescalings
from ..model.graph import ImportedModel
from ..model.layer import Layer
from ..model.plan import Plan
from ..model.results import LayerCheck, Verification
from ..model.target import Target

MIN_SQNR_DB = 60.0
MAX_SAMPLES = 4


def verify_device(target: Target) -> VulkanDevice:
    """The Vulkan device a build for `target` is verified on; refuses (one line) a non-Vulkan
    target, a machine without a device, and a device of another subgroup size."""
    if target.driver != "vulkan":
        raise QuantuneError(
            f"--verify checks Vulkan builds on this machine's Vulkan device; {target.name} "
            "is not one"
        )
    devices = vulkan_devices()
    if not devices:
        raise QuantuneError(
            f"--verify of {target.name} needs a Vulkan device and this machine has none "
            "(lavapipe: install mesa-vulkan-drivers and libvulkan1)"
        )
    device = devices[0]
    built_for = subgroup_sizes(target)
    if device.subgroup_size not in built_for:
        sizes = "/".join(str(s) for s in built_for)
        raise QuantuneError(
            f"--verify of {target.name}: its kernels assume {sizes}-lane subgroups and this "
            f"machine's device ({device.name}) has {device.subgroup_size}, so a mismatch would "
            "prove nothing; build for a target of the device's subgroup size to verify here"
        )
    return device


def _device_runner(vmfb: bytes, function: str) -> Callable[[Sequence[np.ndarray]], list]:
    """`vmfb` loaded on the Vulkan device once (its pipelines are created once), to call."""
    return Runner(vmfb, function, "vulkan")


def _top1(x: np.ndarray) -> np.ndarray:
    """The argmax of each row (the leading axis is the batch when there is more than one)."""
    return x.reshape(x.shape[0] if x.ndim > 1 else 1, -1).argmax(-1)


def verify_build(
    model: ImportedModel,
    plan: Plan,
    target: Target,
    vmfb: bytes,
    samples: Iterable[Sequence[np.ndarray]],
    device: VulkanDevice,
) -> Verification:
    """Runs `vmfb` (built for `target` from `plan`) on the device; see the module docstring.
    Raises QuantuneError naming the first layer that computes wrongly there."""
    host = Engine(model, get_target("host")).load(plan, what="the host build to verify against")
    device_run = _device_runner(vmfb, model.function)
    worst: tuple[float, list[np.ndarray]] | None = None
    count = same = 0
    for sample in samples:
        if count == MAX_SAMPLES:
            break
        want = host(sample)
        got = device_run(sample)
        db = min(sqnr(w, g) for w, g in zip(want, got, strict=True))
        same += bool(np.array_equal(_top1(want[0]), _top1(got[0])))
        count += 1
        if worst is None or db < worst[0]:
            worst = (db, list(sample))
    if worst is None:
        raise QuantuneError("--verify: no calibration sample to run")
    result = Verification(device.name, count, worst[0], same, MIN_SQNR_DB)
    if result.outputs_agree:
        return result
    checks = check_layers(model, plan, target, worst[1])
    bad = [c for c in checks if not c.local_db >= MIN_SQNR_DB]  # nan: not checkable
    if bad and math.isnan(bad[0].local_db):
        raise QuantuneError(
            f"--verify on {device.name}: outputs {worst[0]:.1f} dB against the host build, and "
            "the layers cannot be checked one by one (a node is unnamed or its weights are "
            "computed)"
        )
    if bad:
        c = bad[0]
        raise QuantuneError(
            f"--verify failed on {device.name}: layer {c.layer_id} ('{c.label}', {c.precision}) "
            f"gives {c.local_db:.1f} dB against the host's result for the same input (needs "
            f"{MIN_SQNR_DB:.0f} dB); outputs {worst[0]:.1f} dB"
        )
    return replace(result, layers=tuple(checks))


def check_layers(
    model: ImportedModel, plan: Plan, target: Target, sample: Sequence[np.ndarray]
) -> list[LayerCheck]:
    """Every layer of `plan` on one sample: its device output against the host build's and
    against the host's result of the layer alone on the device's input (see module docstring)."""
    engine = Engine(model, target)
    ids = [layer.id for layer in engine.layers]
    lowered = engine.lower(plan, taps=ids)
    assert lowered.taps is not None
    taps = lowered.taps
    vmfb = compile_vmfb(lowered.bytecode, target, what="the tapped model to verify")
    got = _device_runner(vmfb, lowered.function)(sample)
    want = Engine(model, get_target("host")).load(plan, taps=ids)(sample)
    alone = _layers_alone(
        model,
        plan,
        engine.layers,
        [got[taps.input_result[i]] for i in ids],
        [got[taps.output_result[i]].shape for i in ids],
    )
    by_id = {lp.layer_id: lp for lp in plan.layers}
    checks = []
    for k, layer in enumerate(engine.layers):
        out = got[taps.output_result[layer.id]]
        local = sqnr(alone[k], out) if alone is not None else math.nan
        checks.append(
            LayerCheck(
                layer.id,
                layer.label,
                by_id[layer.id].precision,
                local,
                sqnr(want[taps.output_result[layer.id]], out),
            )
        )
    return checks


def _layers_alone(
    model: ImportedModel,
    plan: Plan,
    layers: Sequence[Layer],
    inputs: Sequence[np.ndarray],
    output_shapes: Sequence[tuple[int, ...]],
) -> list[np.ndarray] | None:
    """The host's result of each layer alone on `inputs` (one per layer, in order): an ONNX model
    of the layers' nodes side by side, each fed from its own graph input, built with the same
    plan. None when a node cannot be taken out alone (unnamed, or fed by computed weights)."""
    original = load_onnx(model.path)
    if model.equalization:  # the weights the plan's scales were made for
        original = apply_rescalings(original, model.equalization)
    graph = original.graph
    nodes = {n.name: n for n in graph.node if n.name}
    constants = {t.name: t for t in graph.initializer}
    for n in graph.node:  # Constant nodes are weights too
        if n.op_type == "Constant" and len(n.output) == 1:
            value = next((a for a in n.attribute if a.name == "value"), None)
            if value is not None:
                constants[n.output[0]] = onnx.helper.get_attribute_value(value)
    new_nodes, new_inputs, new_outputs, inits = [], [], [], {}
    for k, (layer, x, shape) in enumerate(zip(layers, inputs, output_shapes, strict=True)):
        node = nodes.get(layer.node)
        if node is None or any(name and name not in constants for name in node.input[1:]):
            return None
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[0] = f"quantune_verify_in{k}"
        del copy.output[:]
        copy.output.append(f"quantune_verify_out{k}")
        new_nodes.append(copy)
        new_inputs.append(
            onnx.helper.make_tensor_value_info(copy.input[0], onnx.TensorProto.FLOAT, x.shape)
        )
        new_outputs.append(
            onnx.helper.make_tensor_value_info(copy.output[0], onnx.TensorProto.FLOAT, shape)
        )
        for name in node.input[1:]:
            if name:
                inits[name] = constants[name]
    initializers = []
    for name, t in inits.items():
        c = onnx.TensorProto()
        c.CopyFrom(t)
        c.name = name
        initializers.append(c)
    side = onnx.helper.make_graph(new_nodes, "quantune_layers_alone", new_inputs, new_outputs)
    side.initializer.extend(initializers)
    proto = onnx.helper.make_model(side, opset_imports=list(original.opset_import))
    proto.ir_version = original.ir_version
    with tempfile.TemporaryDirectory(prefix="quantune-alone-") as tmp:
        path = os.path.join(tmp, "layers.onnx")
        onnx.save(proto, path)
        alone = import_onnx(path)
        engine = Engine(alone, get_target("host"))
        if [x.node for x in engine.layers] != [x.node for x in layers]:
            return None
        by_node = {lp.node: lp for lp in plan.layers}
        alone_plan = Plan(
            alone.sha256,
            plan.config,
            tuple(replace(by_node[x.node], layer_id=x.id) for x in engine.layers),
        )
        results = engine.load(alone_plan, what="the layers alone")(list(inputs))
    return [results[k] for k in range(len(layers))]

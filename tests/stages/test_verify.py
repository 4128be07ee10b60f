"""--verify: a Vulkan build against the host build of its plan on this machine's Vulkan device;
layer by layer, each layer against the host's result for the device's own input to it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import conv_stack_inputs
from quantune_iree.algo.planning import build_plan
from quantune_iree.backend.engine import Engine
from quantune_iree.backend.targets import get_target
from quantune_iree.backend.vulkan_device import VulkanDevice
from quantune_iree.errors import QuantuneError
from quantune_iree.ir.layers import layer_table
from quantune_iree.model.plan import QuantConfig, with_precisions
from quantune_iree.stages import verify
from quantune_iree.stages.fp32_pass import run_fp32_pass
from targets_env import require_lavapipe

LLVMPIPE = get_target("vulkan", vulkan_target="llvmpipe")


@pytest.fixture(scope="module")
def int8_plan(conv_stack_model):  # noqa: ANN001, ANN201 - Plan
    stats = run_fp32_pass(conv_stack_model, [[x] for x in conv_stack_inputs(4, seed=3)])
    return build_plan(conv_stack_model.sha256, layer_table(conv_stack_model), stats, QuantConfig())


def test_only_vulkan_builds_are_verified() -> None:
    with pytest.raises(QuantuneError, match="checks Vulkan builds"):
        verify.verify_device(get_target("host"))


def test_a_machine_without_a_vulkan_device_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(verify, "vulkan_devices", lambda: [])
    with pytest.raises(QuantuneError, match="needs a Vulkan device") as info:
        verify.verify_device(LLVMPIPE)
    assert "\n" not in str(info.value)


def test_a_device_of_another_subgroup_size_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(verify, "vulkan_devices", lambda: [VulkanDevice("gpu", 8)])
    with pytest.raises(QuantuneError, match="16-lane subgroups .* has 8"):
        verify.verify_device(get_target("vulkan", vulkan_target="valhall4"))
    assert verify.verify_device(LLVMPIPE).subgroup_size == 8


def test_an_int8_build_on_lavapipe_agrees_with_the_host(conv_stack_model, int8_plan) -> None:
    require_lavapipe()
    device = verify.verify_device(LLVMPIPE)
    vmfb = Engine(conv_stack_model, LLVMPIPE).build(int8_plan)
    samples = [[x] for x in conv_stack_inputs(6, seed=5)]
    v = verify.verify_build(conv_stack_model, int8_plan, LLVMPIPE, vmfb, samples, device)
    assert v.samples == verify.MAX_SAMPLES and v.top1_same == v.samples
    assert v.outputs_agree and v.output_sqnr_db >= 100.0
    assert v.layers == ()  # outputs agree: no layer-by-layer check needed


def test_every_layer_computes_its_own_device_input_like_the_host(conv_stack_model, int8_plan):
    """Mixed plan: each layer's device output against the host's result of that layer alone
    on the device's input (exact for int8 layers but for float quantize rounding)."""
    require_lavapipe()
    plan = with_precisions(int8_plan, [1, 4])
    checks = verify.check_layers(conv_stack_model, plan, LLVMPIPE, conv_stack_inputs(1, seed=8))
    assert [c.layer_id for c in checks] == [lp.layer_id for lp in plan.layers]
    assert [c.precision for c in checks] == [lp.precision for lp in plan.layers]
    assert all(c.local_db >= 100.0 for c in checks), checks


def test_a_layer_wrong_on_the_device_is_named(conv_stack_model, int8_plan, monkeypatch) -> None:
    """The device run is corrupted from layer 2's output on: the outputs disagree, and the
    layer-by-layer check blames layer 2, not the layers after it that merely receive it."""
    require_lavapipe()
    real = verify._device_runner
    engine = Engine(conv_stack_model, LLVMPIPE)
    taps = engine.lower(int8_plan, taps=[lay.id for lay in engine.layers]).taps
    assert taps is not None

    def broken(vmfb, function):  # noqa: ANN001, ANN202
        run = real(vmfb, function)

        def call(inputs):  # noqa: ANN001, ANN202
            out = run(inputs)
            if len(out) == 1:
                return [-out[0]]
            out[taps.output_result[2]] = out[taps.output_result[2]] * np.float32(1.5)
            return out

        return call

    monkeypatch.setattr(verify, "_device_runner", broken)
    device = verify.verify_device(LLVMPIPE)
    vmfb = Engine(conv_stack_model, LLVMPIPE).build(int8_plan)
    with pytest.raises(QuantuneError, match=r"layer 2 \('gconv2', int8\) gives 6\.0 dB") as info:
        verify.verify_build(
            conv_stack_model, int8_plan, LLVMPIPE, vmfb, [conv_stack_inputs(1, 2)], device
        )
    assert "\n" not in str(info.value)


def test_mobilenet_v2_default_plan_on_lavapipe_is_right_layer_by_layer(calib_images) -> None:
    """The default plan's first 3 layers FP32: lavapipe's float rounding differs from the
    host's in the last bits, INT8 rounding downstream amplifies it, and the outputs drift apart
    (about 15 dB, which --verify measures first): yet each layer, given the device's own input,
    computes the host's result (int8 layers exactly, FP32 layers to >= 100 dB)."""
    from conftest import shared_model
    from quantune_iree.io.dataset import PRESETS, iter_samples
    from quantune_iree.ir.importer import import_onnx

    require_lavapipe()
    model = import_onnx(shared_model("mobilenet_v2.onnx"))
    samples = list(iter_samples(calib_images, model.inputs, PRESETS["imagenet"], 4))
    stats = run_fp32_pass(model, samples)
    plan = with_precisions(
        build_plan(model.sha256, layer_table(model), stats, QuantConfig()), [0, 1, 2]
    )
    checks = verify.check_layers(model, plan, LLVMPIPE, samples[0])
    assert [c.precision for c in checks[:4]] == ["fp32"] * 3 + ["int8"]
    assert all(c.local_db >= 100.0 for c in checks), [
        (c.layer_id, c.local_db) for c in checks if c.local_db < 100.0
    ]
    assert all(c.local_db == np.inf for c in checks if c.precision == "int8")  # same integers
    assert checks[-1].vs_host_db < verify.MIN_SQNR_DB  # and yet the runs drift apart


def test_an_equalized_plan_is_checked_against_the_equalized_weights(conv_stack_path) -> None:
    """The layers-alone model takes its weights from the ONNX graph: with an equalizing plan,
    from the rescaled graph the plan's scales were made for, so every int8 layer stays exact."""
    from quantune_iree.ir.importer import import_onnx
    from quantune_iree.model.plan import EqualizedPair

    require_lavapipe()
    pair = EqualizedPair("conv0", "dwconv1", (0.25, 1.0, 0.5, 1.0, 0.125, 1.0, 1.0, 0.5))
    model = import_onnx(conv_stack_path, equalization=[pair])
    stats = run_fp32_pass(model, [[x] for x in conv_stack_inputs(4, seed=3)])
    plan = build_plan(model.sha256, layer_table(model), stats, QuantConfig())
    checks = verify.check_layers(model, plan, LLVMPIPE, conv_stack_inputs(1, seed=8))
    assert all(c.local_db == np.inf for c in checks), [(c.layer_id, c.local_db) for c in checks]

"""The target table: flags, drivers and presets per target; refusals."""

from __future__ import annotations

import pytest
from quantune_iree.backend.targets import (
    CHANNELS_LAST_FLAG,
    WORKER_STACK_FLAG,
    cpu_triple,
    fp32_kinds,
    get_target,
    layer_form,
    needs_subprocess,
)
from quantune_iree.errors import QuantuneError
from quantune_iree.model.target import IntegerForm


def test_host_cpu_and_vulkan_targets() -> None:
    host = get_target("host")
    assert host.driver == "local-task" and "--iree-llvmcpu-target-cpu=host" in host.flags
    a53 = get_target("host", cpu="cortex-a53")
    assert a53.name == "cortex-a53"
    assert "--iree-llvmcpu-target-triple=aarch64-linux-gnu" in a53.flags
    assert cpu_triple("skylake") == "x86_64-linux-gnu"
    vk = get_target("vulkan", vulkan_target="llvmpipe")
    assert vk.name == "vulkan-llvmpipe" and vk.driver == "vulkan"
    assert "--iree-vulkan-target=llvmpipe" in vk.flags


def test_speed_preset_adds_flags_and_its_runtime_flag() -> None:
    speed = get_target("host", preset="speed")
    assert speed.runtime_flags == (WORKER_STACK_FLAG,)
    assert "--iree-llvmcpu-stack-allocation-limit=262144" in speed.flags
    # IREE's own channels-last pass only where our pass does not cover the kxk convs' layout.
    assert CHANNELS_LAST_FLAG in get_target(cpu="znver2", preset="speed").flags
    assert CHANNELS_LAST_FLAG not in get_target(cpu="znver4", preset="speed").flags
    assert needs_subprocess(speed) and not needs_subprocess(get_target("host", preset="iree"))
    assert get_target("host") == speed and speed.channels_last  # speed is the CPU default
    assert get_target("vulkan").preset == "iree" and not get_target("vulkan").channels_last
    extra = get_target("host", ["--iree-opt-level=O3"], preset="speed")
    assert extra.flags[-1] == "--iree-opt-level=O3"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("llvm-cpu",), {}, "needs a CPU name"),
        (("vulkan",), {"cpu": "cortex-a53"}, "conflict"),
        (("vulkan",), {"preset": "speed"}, "preset 'speed' is for CPU targets"),
        (("host",), {"preset": "turbo"}, "unknown preset"),
        (("tpu",), {}, "unknown target"),
    ],
)
def test_bad_targets_are_refused(args, kwargs, message) -> None:  # noqa: ANN001
    with pytest.raises(QuantuneError, match=message):
        get_target(*args, **kwargs)


def test_speed_forms_per_instruction_set() -> None:
    from quantune_iree.model.layer import Layer

    def layer(kind: str, op: str, w: tuple[int, ...], x=(1, 8, 4, 4), y=(1, 8, 4, 4)) -> Layer:  # noqa: ANN001
        return Layer(0, "n", "Conv", kind, op, "fp32", x, w, y, True, (0,), (1,))

    dw = layer("depthwise_conv", "linalg.depthwise_conv_2d_nchw_chw", (8, 3, 3))
    pw = layer("conv", "linalg.conv_2d_nchw_fchw", (8, 8, 1, 1))
    pw_s2 = layer("conv", "linalg.conv_2d_nchw_fchw", (8, 8, 1, 1), y=(1, 8, 2, 2))
    k3 = layer("conv", "linalg.conv_2d_nchw_fchw", (8, 8, 3, 3))
    mm = layer("matmul", "linalg.matmul", (8, 4), (1, 8), (1, 4))
    a53 = get_target(cpu="cortex-a53")
    assert a53.isa == "aarch64" and "--iree-opt-data-tiling" not in a53.flags
    for lay in (dw, pw):
        assert layer_form(a53, lay) == IntegerForm("i16", "channels_last", True)
    assert layer_form(a53, k3) == layer_form(a53, pw_s2) == IntegerForm("i16", "im2col", True)
    assert layer_form(a53, mm) == IntegerForm("i16", "named", True)
    vnni = get_target(cpu="znver4")
    assert vnni.isa == "x86_64_vnni" and "--iree-llvmcpu-enable-inner-tiled" in vnni.flags
    assert layer_form(vnni, dw) == IntegerForm("i8", "channels_last", True)
    assert layer_form(vnni, pw) == IntegerForm("u8", "channels_last", True)
    assert layer_form(vnni, k3) == layer_form(vnni, pw_s2) == IntegerForm("u8", "im2col", True)
    # u8 x s8 matrix-vector products do not compile in IREE 3.13: matmuls stay i8.
    assert layer_form(vnni, mm) == IntegerForm("i8", "named", True)
    x86 = get_target(cpu="znver2")
    assert x86.isa == "x86_64" and "--iree-llvmcpu-enable-inner-tiled" not in x86.flags
    assert layer_form(x86, dw) == layer_form(x86, pw) == IntegerForm("i8", "channels_last", True)
    assert layer_form(x86, k3) == layer_form(x86, pw_s2) == IntegerForm("i8", "named", True)
    assert layer_form(get_target("host", preset="iree"), dw) == IntegerForm()
    # Cortex-A53: INT8 depthwise convs cannot win (4 MACs per instruction in both precisions).
    assert fp32_kinds(a53) == ("depthwise_conv",)
    assert fp32_kinds(get_target(cpu="cortex-a53", preset="iree")) == ()
    assert fp32_kinds(vnni) == fp32_kinds(x86) == fp32_kinds(get_target("vulkan")) == ()
    # Vulkan: i32 storage whatever the preset (IREE 3.13 SPIR-V loses packed i8 sign extensions).
    assert layer_form(get_target("vulkan"), dw) == IntegerForm("i32")


def test_models_with_a_batch_matmul_build_without_inner_tiled_kernels() -> None:
    """IREE 3.13 cannot legalize linalg.batch_matmul (attention) under data tiling with
    inner-tiled kernels: such a model's target drops that one flag, others keep it."""
    from quantune_iree.backend.targets import INNER_TILED_FLAG, for_layers
    from quantune_iree.model.layer import Layer

    def layer(kind: str, op: str, w: tuple[int, ...]) -> Layer:
        return Layer(0, "n", "MatMul", kind, op, "fp32", (2, 4, 4), w, (2, 4, 8), True, (0,), (1,))

    target = get_target("host", cpu="cascadelake")
    assert INNER_TILED_FLAG in target.flags
    attention = layer("batch_matmul", "linalg.batch_matmul", (2, 4, 8))
    conv = layer("conv", "linalg.conv_2d_nchw_fchw", (8, 8, 3, 3))
    assert for_layers(target, [conv]) is target
    dropped = for_layers(target, [conv, attention])
    assert INNER_TILED_FLAG not in dropped.flags
    assert set(dropped.flags) == set(target.flags) - {INNER_TILED_FLAG}

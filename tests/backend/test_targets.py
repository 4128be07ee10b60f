"""The target table: flags, drivers and presets per target; refusals."""

from __future__ import annotations

import pytest
from quantune_iree.backend.targets import (
    CHANNELS_LAST_FLAG,
    WORKER_STACK_FLAG,
    cpu_triple,
    get_target,
    needs_subprocess,
)
from quantune_iree.errors import QuantuneError


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
    assert CHANNELS_LAST_FLAG in speed.flags and speed.runtime_flags == (WORKER_STACK_FLAG,)
    assert needs_subprocess(speed) and not needs_subprocess(get_target("host"))
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

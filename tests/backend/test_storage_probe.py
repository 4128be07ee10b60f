"""The gate in front of --vulkan-storage i8: a probe of int8 1x1 convs, scanned and run."""

from __future__ import annotations

import numpy as np
import pytest
from quantune_iree.backend import storage_probe
from quantune_iree.backend.compile import compile_vmfb
from quantune_iree.backend.runtime import Runner
from quantune_iree.backend.targets import get_target
from quantune_iree.backend.vulkan_device import VulkanDevice
from quantune_iree.errors import QuantuneError


def _i8(vulkan_target: str):  # noqa: ANN202 - Target
    return get_target("vulkan", vulkan_target=vulkan_target, vulkan_storage="i8")


def test_the_probe_computes_what_numpy_computes_on_the_cpu() -> None:
    """The probe's reference is right: IREE's CPU build of it agrees bit for bit."""
    vmfb = compile_vmfb(
        storage_probe.probe_mlir().encode(), get_target("host", preset="iree"), phase="start"
    )
    run = {k: Runner(vmfb, f"conv{k}") for k in range(len(storage_probe.PROBE_SHAPES))}
    for k, shape in enumerate(storage_probe.PROBE_SHAPES):
        x, w, want = storage_probe._probe_inputs(*shape)
        assert x.min() < 0 and w.min() < 0  # negative bytes: the ones the bug gets wrong
        np.testing.assert_array_equal(run[k]([x, w])[0], want)


@pytest.mark.parametrize("vulkan_target", ["llvmpipe", "valhall4", "ampere"])
def test_iree_3_13_keeps_i8_storage_refused(vulkan_target: str) -> None:
    with pytest.raises(QuantuneError, match="still drops the sign extension") as info:
        storage_probe.check_i8_storage(_i8(vulkan_target))
    assert "\n" not in str(info.value) and "i32" in str(info.value)


def test_a_fixed_compiler_opens_i8_storage_when_the_device_agrees(monkeypatch) -> None:
    """With the scan clean (a compiler with the fix, here the CPU build standing in), i8 is
    allowed when the device computes the probe exactly, and refused when it does not."""
    cpu = compile_vmfb(
        storage_probe.probe_mlir().encode(), get_target("host", preset="iree"), phase="start"
    )
    monkeypatch.setattr(storage_probe, "compile_vmfb", lambda *a, **k: cpu)
    monkeypatch.setattr(storage_probe, "vulkan_devices", lambda: [VulkanDevice("gpu", 8)])
    monkeypatch.setattr(storage_probe, "subgroup_sizes", lambda target: (8,))
    runs = []

    def run(path, function, inputs, n, driver):  # noqa: ANN001, ANN202
        runs.append(function)
        return Runner(open(path, "rb").read(), function)(inputs)

    monkeypatch.setattr(storage_probe, "run_module_cli", run)
    assert storage_probe.check_i8_storage(_i8("llvmpipe")) == "scanned and run on gpu"
    assert len(runs) == len(storage_probe.PROBE_SHAPES)

    monkeypatch.setattr(storage_probe, "run_module_cli", lambda *a, **k: [np.zeros(1, np.int32)])
    with pytest.raises(QuantuneError, match="results wrong on gpu"):
        storage_probe.check_i8_storage(_i8("llvmpipe"))
    monkeypatch.setattr(storage_probe, "vulkan_devices", lambda: [])
    assert storage_probe.check_i8_storage(_i8("llvmpipe")) == "scanned"

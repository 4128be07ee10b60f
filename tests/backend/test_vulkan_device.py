"""The Vulkan devices the loader lists, with their subgroup sizes (read through ctypes)."""

from __future__ import annotations

import ctypes
import subprocess

from quantune_iree.backend import vulkan_device
from quantune_iree.backend.runtime import runtime_tool
from targets_env import require_lavapipe


def test_lavapipe_is_listed_with_its_subgroup_size() -> None:
    """The same devices IREE's runtime lists; lavapipe runs 8 lanes (256-bit LLVM vectors)."""
    require_lavapipe()
    devices = vulkan_device.vulkan_devices()
    probe = subprocess.run(
        [runtime_tool("iree-run-module"), "--list_devices"], capture_output=True, text=True
    )
    assert len(devices) == probe.stdout.count("vulkan://")
    lavapipe = [d for d in devices if d.name.startswith("llvmpipe")]
    assert lavapipe and lavapipe[0].subgroup_size == 8, devices


def test_no_vulkan_loader_means_no_devices(monkeypatch) -> None:
    def missing(name: str, *args: object, **kwargs: object) -> ctypes.CDLL:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(vulkan_device.ctypes, "CDLL", missing)
    assert vulkan_device.vulkan_devices() == []

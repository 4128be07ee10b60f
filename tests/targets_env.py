"""Where the tests find the other targets' runners: qemu + the aarch64 iree-run-module
(tools/fetch_aarch64_runtime.sh), and Mesa's lavapipe for Vulkan. Missing ones skip the test,
or fail it when QUANTUNE_REQUIRE_TARGETS=1 (CI installs them all)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AARCH64_RUN = ROOT / "build" / "aarch64-runtime" / "iree" / "_runtime_libs" / "iree-run-module"
QEMU = ["qemu-aarch64", "-cpu", "cortex-a53", "-L", "/usr/aarch64-linux-gnu"]


def _missing(why: str) -> None:
    if os.environ.get("QUANTUNE_REQUIRE_TARGETS") == "1":
        pytest.fail(why)
    pytest.skip(why)


def require_qemu() -> str:
    if shutil.which("qemu-aarch64") is None or not Path("/usr/aarch64-linux-gnu").is_dir():
        _missing("qemu-aarch64 / libc6-arm64-cross not installed")
    if not AARCH64_RUN.exists():
        _missing(f"{AARCH64_RUN} missing: run tools/fetch_aarch64_runtime.sh")
    return str(AARCH64_RUN)


def require_lavapipe() -> None:
    from quantune_iree.backend.runtime import runtime_tool

    probe = subprocess.run(
        [runtime_tool("iree-run-module"), "--list_devices"], capture_output=True, text=True
    )
    if "vulkan://" not in probe.stdout:
        _missing("no Vulkan device (install mesa-vulkan-drivers libvulkan1 for lavapipe)")

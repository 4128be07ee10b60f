"""Compiling: Vulkan builds are checked for IREE 3.13's lost sign extension of packed i8
(llvm/llvm-project#199243); the repro's layers go through the project's Vulkan path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from quantune_iree.backend.compile import compile_vmfb, lost_sign_extensions, subgroup_sizes
from quantune_iree.backend.runtime import Runner, run_module_cli
from quantune_iree.backend.targets import get_target
from quantune_iree.errors import QuantuneError
from targets_env import require_lavapipe

REPRO = Path(__file__).resolve().parents[3] / "shared" / "vulkan_repro"
MASK = "dense<[255, 65280, 16711680, -16777216]>"


def _repro(name: str) -> bytes:
    path = REPRO / name
    if not path.exists():
        pytest.skip(f"{path} not present (the team's shared Vulkan repro)")
    return path.read_bytes()


def test_the_scan_finds_bytes_taken_out_unsigned(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "d_0.spirv.mlir").write_text(
        f"%1 = spirv.BitwiseAnd {MASK}\nspirv.ShiftRightLogical"
    )
    (tmp_path / "d_1.spirv.mlir").write_text(
        f"{MASK} spirv.ShiftRightLogical spirv.ShiftRightArithmetic"
    )
    (tmp_path / "d_2.spirv.mlir").write_text("spirv.ShiftRightLogical")
    (tmp_path / "d_3.mlir").write_text(f"{MASK} spirv.ShiftRightLogical")  # not SPIR-V
    assert lost_sign_extensions(str(tmp_path)) == ["d_0"]


@pytest.mark.parametrize("vulkan_target", ["llvmpipe", "valhall4"])
def test_an_i8_conv_hit_by_the_bug_is_refused(vulkan_target: str) -> None:
    with pytest.raises(QuantuneError, match="drops the sign extension of i8") as info:
        compile_vmfb(
            _repro("conv_i8_tiny.mlir"),
            get_target("vulkan", vulkan_target=vulkan_target),
            phase="start",
        )
    assert "\n" not in str(info.value)


def test_the_i32_storage_layer_runs_on_lavapipe_like_the_cpu(tmp_path) -> None:  # noqa: ANN001
    src = _repro("layer_i32storage.mlir")
    vk = compile_vmfb(src, get_target("vulkan", vulkan_target="llvmpipe"), phase="start")
    cpu = compile_vmfb(src, get_target("host", preset="iree"), phase="start")
    require_lavapipe()
    rng = np.random.default_rng(0)
    inputs = [
        rng.uniform(0, 6, (1, 32, 112, 112)).astype(np.float32),
        rng.integers(-127, 128, (16, 32, 1, 1)).astype(np.int32),
        rng.uniform(1e-4, 1e-2, 16).astype(np.float32),
        rng.integers(-1000, 1000, 16).astype(np.int32),
    ]
    want = Runner(cpu, "main")(inputs)[0]
    (tmp_path / "vk.vmfb").write_bytes(vk)
    got = run_module_cli(str(tmp_path / "vk.vmfb"), "main", inputs, 1, driver="vulkan")[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("vulkan_target", "sizes"),
    [("llvmpipe", (8,)), ("valhall4", (16,)), ("ampere", (32,)), ("rdna3", (32, 64))],
)
def test_subgroup_sizes_are_read_from_the_target(vulkan_target: str, sizes: tuple) -> None:
    assert subgroup_sizes(get_target("vulkan", vulkan_target=vulkan_target)) == sizes

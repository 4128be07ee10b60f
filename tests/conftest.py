"""Shared fixtures: the real models next to the checkout (skipped when absent) and small models."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import models
import numpy as np
import onnx
import pytest

SHARED_EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval"


def shared_model(name: str) -> str:
    path = SHARED_EVAL / "models" / name
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is optional)")
    return str(path)


@pytest.fixture
def calib_images() -> str:
    path = SHARED_EVAL / "images" / "calib"
    if not path.is_dir():
        pytest.skip(f"{path} not present (../shared is optional)")
    return str(path)


@pytest.fixture(scope="session")
def conv_stack_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("models") / "conv_stack.onnx"
    onnx.save(models.conv_stack(), str(path))
    return str(path)


@pytest.fixture(scope="session")
def conv_stack_model(conv_stack_path: str):  # noqa: ANN201 - ImportedModel
    from quantune_iree.ir.importer import import_onnx

    return import_onnx(conv_stack_path)


def npy_folder(path, arrays) -> str:  # noqa: ANN001 - path-like, arrays
    """A calibration folder holding one .npy sample per array, in order."""
    os.makedirs(path, exist_ok=True)
    for i, a in enumerate(arrays):
        np.save(os.path.join(path, f"{i:02d}.npy"), a)
    return str(path)


def conv_stack_inputs(n: int, seed: int) -> list[np.ndarray]:
    """`n` seeded random inputs for models.conv_stack()."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 4, 10, 10)).astype(np.float32) for _ in range(n)]


def dispatch_sources(bytecode: bytes, folder) -> dict[str, str]:  # noqa: ANN001 - path-like
    """Entry-point name → source text of every dispatch IREE forms for `bytecode` (host)."""
    from quantune_iree.backend.compile import compile_vmfb
    from quantune_iree.backend.targets import get_target

    flags = (f"--iree-hal-dump-executable-sources-to={folder}",)
    compile_vmfb(bytecode, get_target("host", flags, preset="iree"))
    out = {}
    for path in glob.glob(str(folder / "*.mlir")):
        text = open(path).read()
        for name in re.findall(r"hal\.executable\.export public @(\w+)", text):
            out[name] = text
    return out

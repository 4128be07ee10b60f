"""Fuzzing the front door (hypothesis): ONNX loading/import and the calibration loaders must
either work or raise QuantuneError, never crash, hang or raise anything else. Bounded for CI
(derandomized); tools/fuzz.py runs the same properties for longer with fresh seeds."""

from __future__ import annotations

import models
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quantune_iree.errors import QuantuneError
from quantune_iree.io.dataset import iter_samples
from quantune_iree.ir.importer import check_memory, import_onnx, load_onnx
from quantune_iree.model.graph import TensorSpec

CI = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SPEC = (TensorSpec("x", (1, 4, 10, 10), "float32"),)
VALID = models.conv_stack().SerializeToString()


def load_bytes(tmp_path, data: bytes) -> None:  # noqa: ANN001
    path = tmp_path / "f.onnx"
    path.write_bytes(data)
    try:
        load_onnx(str(path))
    except QuantuneError:
        pass


def import_mutated(tmp_path, edits: list[tuple[int, int]]) -> None:  # noqa: ANN001
    data = bytearray(VALID)
    for pos, value in edits:
        data[pos % len(data)] = value
    path = tmp_path / "m.onnx"
    path.write_bytes(bytes(data))
    try:
        import_onnx(str(path))
    except QuantuneError:
        pass


def load_calibration_file(tmp_path, name: str, data: bytes) -> None:  # noqa: ANN001
    folder = tmp_path / "c"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    (folder / name).write_bytes(data)
    try:
        for sample in iter_samples(str(folder), SPEC):
            assert sample[0].shape == SPEC[0].shape and np.isfinite(sample[0]).all()
    except QuantuneError:
        pass


@CI
@given(data=st.binary(max_size=2048))
def test_fuzz_onnx_bytes(tmp_path, data: bytes) -> None:
    load_bytes(tmp_path, data)


@CI
@given(
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8)
)
def test_fuzz_mutated_model_import(tmp_path, edits) -> None:  # noqa: ANN001
    import_mutated(tmp_path, edits)


@CI
@given(name=st.sampled_from(["a.npy", "a.npz", "a.png", "a.jpg"]), data=st.binary(max_size=1024))
def test_fuzz_calibration_files(tmp_path, name: str, data: bytes) -> None:
    load_calibration_file(tmp_path, name, data)


def test_model_too_big_for_memory_is_refused() -> None:
    with pytest.raises(QuantuneError, match=r"needs about .* GiB of memory to import, 0.0 GiB"):
        check_memory(models.conv_stack(), "m.onnx", available=1024)

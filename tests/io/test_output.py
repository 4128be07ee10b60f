"""Atomic outputs: every file of a set or none; problems named before any work."""

from __future__ import annotations

import hashlib
import os

import pytest
from quantune_iree.errors import QuantuneError
from quantune_iree.io.output import check_writable, file_sha256, write_all_atomic


def test_all_files_appear_together(tmp_path) -> None:
    files = {str(tmp_path / "a.vmfb"): b"\x00\x01", str(tmp_path / "a.json"): "{}\n"}
    write_all_atomic(files)
    assert (tmp_path / "a.vmfb").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a.json").read_text() == "{}\n"
    assert sorted(os.listdir(tmp_path)) == ["a.json", "a.vmfb"]  # no temporary left


def test_a_failing_file_leaves_none_behind(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    files = {str(tmp_path / "ok.bin"): b"1", str(tmp_path / "sub"): b"2"}  # a directory
    with pytest.raises(QuantuneError, match="is a directory"):
        write_all_atomic(files)
    assert sorted(os.listdir(tmp_path)) == ["sub"]


def test_check_writable_names_the_problem(tmp_path) -> None:
    with pytest.raises(QuantuneError, match="does not exist"):
        check_writable(str(tmp_path / "no" / "x.vmfb"))
    check_writable(str(tmp_path / "x.vmfb"))


def test_file_sha256(tmp_path) -> None:
    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert file_sha256(str(tmp_path / "f")) == hashlib.sha256(b"abc" * 1000).hexdigest()

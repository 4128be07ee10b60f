"""The command line, in-process: exit codes, one-line errors, and nothing written on failure."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import npy_folder
from quantune_iree.cli import main


def _one_line_error(capsys, rc: int, expected: str) -> None:
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "\n" not in err and "Traceback" not in err, err
    assert expected in err, err


def test_layers_table_and_json(conv_stack_path, capsys) -> None:
    assert main(["layers", conv_stack_path]) == 0
    out = capsys.readouterr().out
    assert "depthwise_conv" in out and "gconv2" in out
    assert main(["layers", "--json", conv_stack_path]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [lay["node"] for lay in data["layers"]] == [
        "conv0",
        "dwconv1",
        "gconv2",
        "conv3",
        "gemm",
        "matmul",
    ]


def test_calibrate_writes_stats(conv_stack_path, tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    calib = npy_folder(
        tmp_path / "calib",
        [rng.standard_normal((1, 4, 10, 10)).astype(np.float32) for _ in range(2)],
    )
    out = tmp_path / "stats.json"
    assert main(["calibrate", conv_stack_path, "--calib", calib, "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["samples"] == 2 and data["inference_passes"] == 1 and len(data["layers"]) == 6
    assert "FP32 pass: 2 samples" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["calib", "stats.json"]  # no temp files left


@pytest.mark.parametrize(
    "arrays, expected",
    [
        ([np.full((1, 4, 10, 10), np.nan, np.float32)], "contains NaN or Inf"),
        ([np.ones((1, 4, 9, 9), np.float32)], "does not match model input 'x' (1, 4, 10, 10)"),
        ([np.ones((1, 4, 10, 10), np.int32)], "dtype int32 does not match"),
        ([], "no calibration data"),
    ],
)
def test_calibrate_bad_data_writes_nothing(
    conv_stack_path, tmp_path, capsys, arrays, expected
) -> None:
    calib = npy_folder(tmp_path / "calib", arrays)
    out = tmp_path / "stats.json"
    rc = main(["calibrate", conv_stack_path, "--calib", calib, "-o", str(out)])
    _one_line_error(capsys, rc, expected)
    assert sorted(os.listdir(tmp_path)) == ["calib"]


def test_missing_model(tmp_path, capsys) -> None:
    _one_line_error(capsys, main(["layers", str(tmp_path / "x.onnx")]), "x.onnx: no such file")


def test_not_onnx(tmp_path, capsys) -> None:
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x08\x96\x01not a model at all" * 3)
    _one_line_error(capsys, main(["layers", str(bad)]), "not an ONNX model")


def test_unwritable_outputs(conv_stack_path, tmp_path, capsys) -> None:
    calib = npy_folder(tmp_path / "calib", [np.ones((1, 4, 10, 10), np.float32)])
    rc = main(
        ["calibrate", conv_stack_path, "--calib", calib, "-o", str(tmp_path / "no" / "s.json")]
    )
    _one_line_error(capsys, rc, "does not exist")
    rc = main(["calibrate", conv_stack_path, "--calib", calib, "-o", str(tmp_path)])
    _one_line_error(capsys, rc, "is a directory")


def test_bad_flags(capsys) -> None:
    _one_line_error(capsys, main(["calibrate", "--nope"]), "the following arguments are required")
    _one_line_error(capsys, main(["layers", "m.onnx", "--nope"]), "unrecognized arguments: --nope")
    _one_line_error(capsys, main(["layers", "m.onnx", "--input-shape", "x=1,a"]), "NAME=D0,D1")

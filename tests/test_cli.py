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
    captured = capsys.readouterr()
    assert "FP32 pass: 2 samples" in captured.out
    # Not a terminal: the pass still says it started (and then every 10 s), one line each on
    # stdout (stderr is kept for the one-line error).
    assert "FP32 pass: 1 samples\n" in captured.out and captured.err == ""
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


def test_compile_verify_on_lavapipe(conv_stack_path, tmp_path, capsys) -> None:
    """--verify: the Vulkan build is run on lavapipe against the host build before anything is
    written, and the summary, report and sidecar say how it went; a saved plan can be verified
    too (the calibration folder then only feeds the check)."""
    from conftest import conv_stack_inputs
    from targets_env import require_lavapipe

    require_lavapipe()
    calib = npy_folder(tmp_path / "calib", conv_stack_inputs(3, seed=1))
    vk = ["--target", "vulkan", "--vulkan-target", "llvmpipe", "--verify"]
    out = tmp_path / "out" / "m.vmfb"
    (tmp_path / "out").mkdir()
    (tmp_path / "again").mkdir()
    assert main(["compile", conv_stack_path, "--calib", calib, *vk, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "verification: on llvmpipe" in printed and "3 samples" in printed, printed
    sidecar = json.loads((tmp_path / "out" / "m.vmfb.json").read_text())
    assert sidecar["verification"]["passed"] and sidecar["target"]["vulkan_storage"] == "i32"
    assert "Verification: on llvmpipe" in (tmp_path / "out" / "m.report.md").read_text()
    plan = str(tmp_path / "out" / "m.plan.json")
    again = tmp_path / "again" / "m.vmfb"
    args = ["compile", conv_stack_path, "--plan", plan, "--calib", calib, *vk, "-o", str(again)]
    assert main(args) == 0 and again.read_bytes() == out.read_bytes()

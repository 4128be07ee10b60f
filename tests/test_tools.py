"""The evaluation tools' own logic: K parsing, the grid search for a target agreement, the
greedy search's bookkeeping and the agreement plot."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

evaluate = pytest.importorskip("evaluate")


def test_parse_ks_rounds_percentages_up_and_dedups() -> None:
    assert evaluate.parse_ks("1,2,4,8,5%,10%", 53) == [
        (1, "1"),
        (2, "2"),
        (3, "5%"),
        (4, "4"),
        (6, "10%"),
        (8, "8"),
    ]
    assert evaluate.parse_ks("4,8%", 50) == [(4, "4")]  # 8% of 50 = 4 is already there
    assert evaluate.parse_ks("80", 10) == [(10, "10")]  # at most every layer


def test_grid_scan_finds_the_first_grid_point_reaching_each_target() -> None:
    agreement = {0: 80, 1: 91, 2: 85, 4: 93, 16: 96, 32: 98, 48: 99.5, 53: 100}
    asked: list[int] = []

    def at(k: int) -> float:
        asked.append(k)
        return agreement[k]

    found = evaluate.grid_scan(at, 53, [90, 95, 99], [1, 2, 4])
    assert found == {90: 1, 95: 16, 99: 48}
    assert asked == [0, 1, 2, 4, 16, 32, 48]  # stops once the highest target is reached
    assert evaluate.grid_scan(lambda k: 50.0, 53, [99], [1]) == {99: 53}


class _Builds:
    """Scores a FP32 set on the 'calibration images': agreement and SQNR rise only with layers
    3 and 1."""

    def __init__(self) -> None:
        self.calls = 0

    def score(self, images, ids):  # noqa: ANN001, ANN201
        self.calls += 1
        s = set(ids)
        return (0.5 + 0.2 * (3 in s) + 0.1 * (1 in s), 0.0, 10.0 + (3 in s))


def test_greedy_keeps_only_layers_that_raise_agreement() -> None:
    loo = evaluate.Search(order=[3, 0, 1, 2], passes=5, seconds=10.0)
    builds = _Builds()
    g = evaluate.greedy(builds, None, loo, max_k=8, tries=4)
    assert g.order[:2] == [3, 1] and sorted(g.order) == [0, 1, 2, 3]
    assert g.passes == loo.passes + 1 + 4 and g.seconds >= loo.seconds


def test_agreement_png_is_a_png() -> None:
    from PIL import Image

    png = evaluate.agreement_png(  # now io.charts (matplotlib)
        {"combined": [(0, 75.0), (2, 82.6)], "random": [(0, 75.0)]}, "t", 53
    )
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size[0] > 400


def test_profile_reads_dispatch_times_from_the_hal_profile(conv_stack_path, tmp_path):  # noqa: ANN001
    """profile_dispatches.py: every dispatch of a real build gets a time and a call count."""
    import numpy as np
    import profile_dispatches
    from conftest import conv_stack_inputs
    from quantune_iree.backend.engine import Engine
    from quantune_iree.backend.targets import get_target
    from quantune_iree.ir.importer import import_onnx

    model = import_onnx(conv_stack_path)
    target = get_target("host")
    vmfb = tmp_path / "m.vmfb"
    vmfb.write_bytes(Engine(model, target).build(None))
    np.save(tmp_path / "x.npy", conv_stack_inputs(1, seed=3)[0])
    times = profile_dispatches.dispatch_times(
        str(vmfb), model.function, [str(tmp_path / "x.npy")], target.runtime_flags, 3
    )
    assert times and all("_dispatch_" in name for name in times)
    assert all(us > 0 and calls >= 1 for us, calls in times.values())

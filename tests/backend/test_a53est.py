"""The A53 estimator wrapper: runs the script per build (in parallel, results in build order),
reads its estimate, and turns every failure into one QuantuneError line."""

from __future__ import annotations

import os

import numpy as np
import pytest
from quantune_iree.backend.a53est import A53Estimator
from quantune_iree.errors import QuantuneError

# A stand-in estimator with the real one's interface: cycles = the vmfb's size, so each build's
# figure shows it was priced on its own bytes; it also checks the input and the extra flags.
FAKE = """#!/usr/bin/env bash
set -e
vmfb=$1; input=$2; shift 2
[ "$FUNCTION" = "main" ] || { echo "bad function $FUNCTION"; exit 1; }
python3 -c "import numpy, sys; assert numpy.load(sys.argv[1]).shape == (1, 3)" "$input"
[ "$*" = "--input=@${input%input0.npy}input1.npy --flag=1" ] || { echo "bad args $*"; exit 1; }
mkdir -p "$A53EST_OUT"
size=$(stat -c %s "$vmfb")
echo "{\\"sim_edge_cycles\\": {\\"dispatch\\": $size}}" > "$A53EST_OUT/estimate.json"
"""


def _script(tmp_path, text: str) -> str:  # noqa: ANN001
    path = tmp_path / "est.sh"
    path.write_text(text)
    return str(path)


@pytest.fixture(autouse=True)
def _qemu_on_path(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The wrapper refuses without qemu-aarch64; a stub on PATH stands in for it here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "qemu-aarch64").write_text("#!/bin/sh\n")
    os.chmod(bin_dir / "qemu-aarch64", 0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_each_build_is_priced_in_order(tmp_path) -> None:  # noqa: ANN001
    est = A53Estimator(_script(tmp_path, FAKE))
    inputs = [np.zeros((1, 3), np.float32), np.ones((2,), np.float32)]
    vmfbs = [b"x" * 10, b"y" * 3, b"z" * 7]
    assert est.cycles(vmfbs, "main", inputs, ["--flag=1"]) == [10.0, 3.0, 7.0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("echo boom; exit 3", "the A53 estimator failed: boom"),
        (
            """mkdir -p $A53EST_OUT; echo '{"sim_edge_cycles": 1}' > $A53EST_OUT/estimate.json""",
            "no 'sim_edge_cycles.dispatch'",
        ),
        ("true", "no 'sim_edge_cycles.dispatch'"),
    ],
)
def test_failures_are_one_line(tmp_path, body: str, message: str) -> None:  # noqa: ANN001
    est = A53Estimator(_script(tmp_path, f"#!/usr/bin/env bash\n{body}\n"))
    with pytest.raises(QuantuneError, match=message) as info:
        est.cycles([b"m"], "main", [np.zeros((1, 3), np.float32)])
    assert "\n" not in str(info.value)


def test_missing_script_or_qemu_is_refused(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    with pytest.raises(QuantuneError, match="no such A53 estimator script"):
        A53Estimator(str(tmp_path / "missing.sh"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(QuantuneError, match="needs qemu-aarch64"):
        A53Estimator(_script(tmp_path, FAKE))


def test_every_output_beyond_the_first_gets_a_file(tmp_path) -> None:  # noqa: ANN001
    """iree-run-module wants an --output per result; the script names the first one."""
    script = FAKE.replace(
        '[ "$*" = "--input=@${input%input0.npy}input1.npy --flag=1" ]',
        'd=${input%input0.npy}; [ "$*" = "--input=@${d}input1.npy --output=@${d}extra1.npy '
        '--output=@${d}extra2.npy --flag=1" ]',
    )
    est = A53Estimator(_script(tmp_path, script))
    inputs = [np.zeros((1, 3), np.float32), np.ones((2,), np.float32)]
    assert est.cycles([b"x" * 4], "main", inputs, ["--flag=1"], num_outputs=3) == [4.0]

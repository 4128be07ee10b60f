"""Runs the front-door fuzz properties of tests/test_fuzz.py for longer, with fresh seeds.

Usage: python tools/fuzz.py [--examples N]   (from the repository root)
Any failure prints the minimal input; add it to tests/bad_inputs.py as a corpus case.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_fuzz import import_mutated, load_bytes, load_calibration_file  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=5000)
    n = ap.parse_args().examples
    opts = settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))
    tmp = Path(tempfile.mkdtemp(prefix="quantune-fuzz-"))

    @opts
    @given(st.binary(max_size=4096))
    def onnx_bytes(data: bytes) -> None:
        load_bytes(tmp, data)

    @opts
    @given(
        st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=16)
    )
    def mutated(edits) -> None:  # noqa: ANN001
        import_mutated(tmp, edits)

    @opts
    @given(st.sampled_from(["a.npy", "a.npz", "a.png", "a.jpg"]), st.binary(max_size=4096))
    def calib(name: str, data: bytes) -> None:
        load_calibration_file(tmp, name, data)

    for prop in (onnx_bytes, mutated, calib):
        t0 = time.perf_counter()
        prop()
        print(f"{prop.__name__}: {n} examples, no failure, {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

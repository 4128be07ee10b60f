"""Every case of the bad-input corpus: exit 2, one line naming the problem, nothing written."""

from __future__ import annotations

import os

import pytest
from bad_inputs import CASES
from quantune_iree.cli import main


def _files(root) -> set[str]:  # noqa: ANN001
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, tmp_path, capsys) -> None:
    (tmp_path / "out").mkdir(exist_ok=True)
    argv, expected = CASES[name](tmp_path)
    before = _files(tmp_path)
    rc = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert rc == 2, (name, err, captured.out)
    assert err.startswith("quantune-iree: error: "), err
    assert "\n" not in err and "Traceback" not in err, err
    assert expected in err, (name, err)
    assert _files(tmp_path) == before, "something was written"

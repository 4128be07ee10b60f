"""Compiler sessions: flags are checked, diagnostics name the node they are about."""

from __future__ import annotations

import pytest
from quantune_iree.errors import QuantuneError
from quantune_iree.ir import session as ir_session


@pytest.mark.parametrize(
    ("text", "node", "message"),
    [
        ('loc("conv0"): error: failed to legalize', "conv0", "failed to legalize"),
        ('"/a/Conv": error: bad op: %0 = linalg.conv', "/a/Conv", "bad op"),
        ("warning: x\nerror: plain", "", "plain"),
        ("", "", "no diagnostic was emitted"),
    ],
)
def test_first_error(text: str, node: str, message: str) -> None:
    got_node, got_message = ir_session.first_error(text)
    assert got_node == node and message in got_message


def test_a_bad_flag_is_one_error() -> None:
    with pytest.raises(QuantuneError, match="bad IREE compiler flag"):
        ir_session.new_session(["--no-such-iree-flag=1"])

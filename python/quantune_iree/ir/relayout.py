"""Float convs channels-last: runs quantune-channels-last on input-phase bytecode. The last
rewrite before compiling (after the plan and the taps)."""

from __future__ import annotations

from . import native
from . import session as ir_session


def channels_last(bytecode: bytes) -> tuple[bytes, int]:
    """The module with every float 2-D NCHW conv and depthwise conv rewritten NHWC between
    transposes, and how many it rewrote."""
    session = ir_session.new_session()
    module = ir_session.parse_module(session, bytecode)
    count = native.channels_last(module)
    native.verify(module)
    return ir_session.to_bytecode(module), count

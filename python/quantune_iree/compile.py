"""Input-phase MLIR (bytecode) → .vmfb for a target, through IREE's pipeline in-process."""

from __future__ import annotations

from . import ir_session
from .errors import QuantuneError
from .targets import Target


def compile_vmfb(bytecode: bytes, target: Target, *, what: str = "model") -> bytes:
    """Compiles a module already at IREE's `input` phase; returns the vmfb bytes."""
    session = ir_session.new_session(target.flags)
    module = ir_session.parse_module(session, bytecode)
    ok, diags, vmfb = ir_session.run_pipeline(
        session, module, compile_from="input", output_vmfb=True
    )
    if not ok or vmfb is None:
        node, msg = ir_session.first_error(diags)
        where = f" at ONNX node '{node}'" if node else ""
        raise QuantuneError(f"compiling {what} for {target.name} failed{where}: {msg}")
    return vmfb

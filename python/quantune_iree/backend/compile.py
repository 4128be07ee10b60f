"""Input-phase MLIR (bytecode) → .vmfb for a target, through IREE's pipeline. Compiles only: a
failure is a QuantuneError whose `node` names the ONNX node IREE failed on, when it says."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import subprocess
import tempfile

from ..errors import QuantuneError
from ..ir import session as ir_session
from ..model.target import Target
from .targets import needs_subprocess


def _compile_error(diagnostics: str, target: Target, what: str) -> QuantuneError:
    node, msg = ir_session.first_error(diagnostics)
    where = f" at ONNX node '{node}'" if node else ""
    return QuantuneError(
        f"compiling {what} for {target.name} failed{where}: {msg}", node=node or None
    )


def _no_aslr() -> None:
    # LLVM seeds some hashes with addresses; with address randomisation on, the executable
    # libraries IREE embeds differ in a few bytes from run to run. Runs in the child only.
    ctypes.CDLL(None).personality(0x0040000)  # ADDR_NO_RANDOMIZE


def _compile_tool() -> str:
    spec = importlib.util.find_spec("iree.compiler")
    assert spec is not None and spec.submodule_search_locations
    return os.path.join(list(spec.submodule_search_locations)[0], "_mlir_libs", "iree-compile")


def compile_vmfb_reproducible(bytecode: bytes, target: Target, *, what: str = "model") -> bytes:
    """Like compile_vmfb, but byte-for-byte reproducible: iree-compile runs in a child process
    without address-space randomisation."""
    with tempfile.TemporaryDirectory(prefix="quantune-compile-") as tmp:
        src, out = os.path.join(tmp, "input.mlirbc"), os.path.join(tmp, "out.vmfb")
        with open(src, "wb") as f:
            f.write(bytecode)
        proc = subprocess.run(
            [_compile_tool(), "--compile-from=input", *target.flags, src, "-o", out],
            capture_output=True,
            text=True,
            preexec_fn=_no_aslr,
        )
        if proc.returncode != 0 or not os.path.exists(out):
            raise _compile_error(proc.stderr, target, what)
        with open(out, "rb") as f:
            return f.read()


def compile_vmfb(bytecode: bytes, target: Target, *, what: str = "model") -> bytes:
    """Compiles a module already at IREE's `input` phase; returns the vmfb bytes."""
    if needs_subprocess(target):
        return compile_vmfb_reproducible(bytecode, target, what=what)
    session = ir_session.new_session(target.flags)
    module = ir_session.parse_module(session, bytecode)
    ok, diags, vmfb = ir_session.run_pipeline(
        session, module, compile_from="input", output_vmfb=True
    )
    if not ok or vmfb is None:
        raise _compile_error(diags, target, what)
    return vmfb

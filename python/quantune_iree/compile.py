"""Input-phase MLIR (bytecode) → .vmfb for a target, through IREE's pipeline in-process."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import subprocess
import tempfile
from collections.abc import Callable

from . import ir_session
from .errors import QuantuneError
from .plan import Plan, with_precisions
from .targets import Target, needs_subprocess


def _compile_error(diagnostics: str, target: Target, what: str) -> QuantuneError:
    """The one-line error for a failed compile; build_vmfb reads the node name back from it."""
    node, msg = ir_session.first_error(diagnostics)
    where = f" at ONNX node '{node}'" if node else ""
    return QuantuneError(f"compiling {what} for {target.name} failed{where}: {msg}")


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


_NODE = re.compile(r"at ONNX node '([^']+)'")


def build_vmfb(
    bytecode_for: Callable[[Plan], bytes], plan: Plan, target: Target, max_fallbacks: int = 8
) -> tuple[bytes, Plan]:
    """Compiles the plan's model; an int8 layer the backend fails on falls back to FP32 (the
    error names its ONNX node) and the build is retried. Returns the vmfb and the final plan."""
    for _ in range(max_fallbacks + 1):
        try:
            return compile_vmfb_reproducible(bytecode_for(plan), target), plan
        except QuantuneError as exc:
            match = _NODE.search(str(exc))
            failing = [lp for lp in plan.int8_layers if match and lp.node == match.group(1)]
            if not failing:
                raise
            lp = failing[0]
            reason = f"{target.name} backend failed to compile it in int8"
            keep = [x.layer_id for x in plan.fp32_layers] + [lp.layer_id]
            plan = with_precisions(plan, keep, reasons={lp.layer_id: reason})
    raise QuantuneError(f"compiling for {target.name} still fails after {max_fallbacks} fallbacks")

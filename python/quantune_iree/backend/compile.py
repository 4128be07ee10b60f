"""Input-phase MLIR (bytecode) → .vmfb for a target, through IREE's pipeline. Compiles only: a
failure is a QuantuneError whose `node` names the ONNX node IREE failed on, when it says.

Vulkan builds are also checked for a known IREE 3.13 miscompile: its SPIR-V lowering takes i8
values loaded 4 to a 32-bit word out with a mask and a *logical* shift and never sign-extends
them (llvm/llvm-project#199243), so an int8 contraction silently computes u8 x s8. quantune's
integer IR only ever sign-extends, so that signature in the SPIR-V is always a miscompile: the
build is refused, naming the dispatches."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
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


# The bug's signature in the dumped SPIR-V (../shared/vulkan_repro): the 4 byte masks of an i32
# word, logical right shifts, and no arithmetic shift to restore the sign.
_LOST_SEXT_MASK = "dense<[255, 65280, 16711680, -16777216]>"


def lost_sign_extensions(dump_dir: str) -> list[str]:
    """The dispatches (SPIR-V files under `dump_dir`) that take bytes out of i32 words without
    sign-extending them."""
    hits = []
    for root, _, files in os.walk(dump_dir):
        for name in sorted(files):
            if not name.endswith(".spirv.mlir"):
                continue
            with open(os.path.join(root, name)) as f:
                text = f.read()
            if (
                _LOST_SEXT_MASK in text
                and "ShiftRightLogical" in text
                and "ShiftRightArithmetic" not in text
            ):
                hits.append(name.removesuffix(".spirv.mlir"))
    return sorted(hits)


def _checked(target: Target, dump_dir: str, what: str) -> None:
    hits = lost_sign_extensions(dump_dir)
    if hits:
        shown = ", ".join(hits[:3]) + (f" (+{len(hits) - 3} more)" if len(hits) > 3 else "")
        raise QuantuneError(
            f"compiling {what} for {target.name}: IREE's SPIR-V drops the sign extension of "
            f"i8 values in {len(hits)} dispatches ({shown}), so their integers would be wrong "
            "(llvm/llvm-project#199243); store the layers' integers in i32"
        )


def _check_flags(target: Target, dump_dir: str) -> list[str]:
    """Vulkan builds dump their SPIR-V for the check; other targets need nothing."""
    if target.driver != "vulkan":
        return []
    return [f"--iree-hal-dump-executable-intermediates-to={dump_dir}"]


def compile_vmfb_reproducible(
    bytecode: bytes, target: Target, *, what: str = "model", phase: str = "input"
) -> bytes:
    """Like compile_vmfb, but byte-for-byte reproducible: iree-compile runs in a child process
    without address-space randomisation."""
    with tempfile.TemporaryDirectory(prefix="quantune-compile-") as tmp:
        src, out = os.path.join(tmp, "input.mlirbc"), os.path.join(tmp, "out.vmfb")
        with open(src, "wb") as f:
            f.write(bytecode)
        dump = os.path.join(tmp, "dump")
        check = _check_flags(target, dump)
        proc = subprocess.run(
            [_compile_tool(), f"--compile-from={phase}", *target.flags, *check, src, "-o", out],
            capture_output=True,
            text=True,
            preexec_fn=_no_aslr,
        )
        if proc.returncode != 0 or not os.path.exists(out):
            raise _compile_error(proc.stderr, target, what)
        if check:
            _checked(target, dump, what)
        with open(out, "rb") as f:
            return f.read()


def compile_vmfb(
    bytecode: bytes, target: Target, *, what: str = "model", phase: str = "input"
) -> bytes:
    """Compiles a module already at IREE's `phase` (`input`; `start` for plain func.func MLIR);
    returns the vmfb bytes."""
    if needs_subprocess(target):
        return compile_vmfb_reproducible(bytecode, target, what=what, phase=phase)
    with tempfile.TemporaryDirectory(prefix="quantune-spirv-") as dump:
        check = _check_flags(target, dump)
        session = ir_session.new_session([*target.flags, *check])
        module = ir_session.parse_module(session, bytecode)
        ok, diags, vmfb = ir_session.run_pipeline(
            session, module, compile_from=phase, output_vmfb=True
        )
        if not ok or vmfb is None:
            raise _compile_error(diags, target, what)
        if check:
            _checked(target, dump, what)
        return vmfb


_PROBE = """
func.func @probe(%a: tensor<64x64xf32>, %b: tensor<64x64xf32>) -> tensor<64x64xf32> {
  %e = tensor.empty() : tensor<64x64xf32>
  %z = arith.constant 0.0 : f32
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<64x64xf32>) -> tensor<64x64xf32>
  %m = linalg.matmul ins(%a, %b : tensor<64x64xf32>, tensor<64x64xf32>)
                     outs(%f : tensor<64x64xf32>) -> tensor<64x64xf32>
  return %m : tensor<64x64xf32>
}
"""


def subgroup_sizes(target: Target) -> tuple[int, ...]:
    """The subgroup sizes IREE builds `target`'s Vulkan kernels for (its target description's
    `subgroup_size_choices`), read from a small probe build."""
    with tempfile.TemporaryDirectory(prefix="quantune-subgroup-") as tmp:
        src, dump = os.path.join(tmp, "probe.mlir"), os.path.join(tmp, "dump")
        with open(src, "w") as f:
            f.write(_PROBE)
        proc = subprocess.run(
            [_compile_tool(), *target.flags, *_check_flags(target, dump), src, "-o", os.devnull],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise _compile_error(proc.stderr, target, "a subgroup-size probe")
        sizes: set[int] = set()
        for root, _, files in os.walk(dump):
            for name in files:
                with open(os.path.join(root, name), errors="replace") as f:
                    for m in re.finditer(r"subgroup_size_choices = \[([0-9, ]+)\]", f.read()):
                        sizes.update(int(x) for x in m.group(1).split(","))
        return tuple(sorted(sizes))

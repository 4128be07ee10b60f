"""Thin access to IREE's compiler session: contexts, parsing, phases, diagnostics.

IREE's Python API (`iree.compiler.api`) wraps the C embedding API with ctypes but does not expose
the compile-to/compile-from phase setters, so they are bound here. Modules move between stages as
MLIR bytecode; each stage parses its own copy, so no Python handle outlives an in-place rewrite.
"""

from __future__ import annotations

import ctypes
import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from iree.compiler import ir
from iree.compiler.api import Output, Session
from iree.compiler.api import ctypes_dl as _dl

from ..errors import QuantuneError
from ..model.graph import TensorSpec
from . import native


def _phase_setter(name: str) -> Any:
    fn = getattr(_dl._dylib, name)
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return fn


def new_session(flags: Sequence[str] = ()) -> Session:
    """A compiler session with every dialect loaded in its context (the torch pipeline needs it)."""
    session = Session()
    if flags:
        try:
            session.set_flags(*flags)
        except ValueError as exc:
            raise QuantuneError(f"bad IREE compiler flag: {exc}") from None
    session.context.load_all_available_dialects()
    return session


def parse_module(session: Session, bytecode: bytes) -> ir.Module:
    with session.context:
        return ir.Module.parse(bytecode)


def to_bytecode(module: ir.Module | ir.Operation) -> bytes:
    buf = io.BytesIO()
    op = module.operation if isinstance(module, ir.Module) else module
    op.write_bytecode(buf)
    return buf.getvalue()


# A node name in a diagnostic: loc("name") from the in-process handler, or a leading
# "name": from iree-compile's printer.
_LOC = re.compile(r'loc\("([^"]+)"|^"([^"]+)":')


def first_error(diagnostics: str) -> tuple[str, str]:
    """(node name or '', message) of the first diagnostic line that carries an error."""
    lines = [ln for ln in diagnostics.splitlines() if ln.strip()]
    for line in lines:
        if "error" in line.lower() or "failed" in line.lower():
            m = _LOC.search(line)
            msg = line.split(": ", 1)[1] if ": " in line else line
            msg = msg.split(": %", 1)[0]  # drop the printed op that may follow
            return ((m.group(1) or m.group(2)) if m else "", msg.strip())
    return ("", lines[0].strip() if lines else "no diagnostic was emitted")


@contextmanager
def capture(session: Session) -> Iterator[Any]:
    diags = native.DiagnosticCapture(session.context)
    try:
        yield diags
    finally:
        diags.detach()


def run_pipeline(
    session: Session,
    module: ir.Module | ir.Operation,
    *,
    compile_from: str | None = None,
    compile_to: str | None = None,
    output_vmfb: bool = False,
) -> tuple[bool, str, bytes | None]:
    """Runs IREE's standard pipeline on `module` in place.

    Returns (ok, diagnostics, vmfb bytes when requested and ok).
    """
    op = module.operation if isinstance(module, ir.Module) else module
    with capture(session) as diags:
        inv = session.invocation()
        try:
            inv.import_module(op)
            if compile_from:
                _phase_setter("ireeCompilerInvocationSetCompileFromPhase")(
                    inv._inv_p, compile_from.encode()
                )
            if compile_to:
                _phase_setter("ireeCompilerInvocationSetCompileToPhase")(
                    inv._inv_p, compile_to.encode()
                )
            ok = bool(inv.execute())
            vmfb = None
            if ok and output_vmfb:
                out = Output.open_membuffer()
                inv.output_vm_bytecode(out)
                vmfb = bytes(out.map_memory())
                out.close()
        finally:
            inv.close()
        return ok, diags.text(), vmfb


_TYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "i64": "int64", "i32": "int32"}
_TYPES.update({"i8": "int8", "i1": "bool", "ui8": "uint8", "i16": "int16"})


def _spec(name: str, t: ir.Type) -> TensorSpec:
    text = str(t)
    m = re.fullmatch(r"(?:!torch\.vtensor<\[([\d,]*)\],(\w+)>|tensor<((?:\d+x)*)([a-z]\w*)>)", text)
    if not m:
        raise QuantuneError(f"entry function argument {name} has type {text}: not a static tensor")
    dims = m.group(1) if m.group(1) is not None else (m.group(3) or "")
    elem = m.group(2) or m.group(4)
    shape = tuple(int(d) for d in re.split("[,x]", dims) if d)
    if elem not in _TYPES:
        raise QuantuneError(f"entry function argument {name} has element type {elem}")
    return TensorSpec(name, shape, np.dtype(_TYPES[elem]).name)


def entry_function(module: ir.Module) -> tuple[str, tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The one public function: its name and argument/result tensors."""
    publics = []
    for op in module.body.operations:
        attrs = op.operation.attributes
        if "function_type" not in attrs or "sym_name" not in attrs:
            continue
        if "sym_visibility" in attrs and str(attrs["sym_visibility"]).strip('"') != "public":
            continue
        publics.append(op.operation)
    if len(publics) != 1:
        raise QuantuneError(f"expected one public entry function, found {len(publics)}")
    op = publics[0]
    ftype = ir.FunctionType(ir.TypeAttr(op.attributes["function_type"]).value)
    name = ir.StringAttr(op.attributes["sym_name"]).value
    ins = tuple(_spec(f"arg{i}", t) for i, t in enumerate(ftype.inputs))
    outs = tuple(_spec(f"result{i}", t) for i, t in enumerate(ftype.results))
    return name, ins, outs

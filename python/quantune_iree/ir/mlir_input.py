"""MLIR in, for toolchains: what `iree-import-onnx` or iree-turbine produce (torch dialect), or
IREE `input`-phase MLIR (linalg on tensors), as text or bytecode → an ImportedModel the engine
can apply a plan to, the same way it does for an ONNX file.

Torch-dialect input is lowered to the `input` phase in-process with the flags the ONNX import
uses. Weights that arrive as `dense_resource` blobs (iree-import-onnx's default) are inlined as
dense elements, which the native passes read through the C API.

Layers are identified by op order (their id: the position in the module's walk order), and by
the ONNX node name when the locations carry one (our own import, `iree-import-onnx` text
printed with debug info). A plan made from the ONNX file applies when the layer count matches
and, where the module names a layer, the names match too. Torch-dialect text without locations
(`iree-import-onnx`'s default) gets a name per ONNX op, `#K onnx.Op` (K: the op's position),
because the quantize pass finds a node's own pad, reshapes and epilogue by their shared name;
such names are positional and never compared with the plan's (`POSITIONAL`).
"""

from __future__ import annotations

import hashlib
import re

from iree.compiler import ir

from ..errors import QuantuneError
from ..model.graph import ImportedModel
from . import session as ir_session
from .importer import IMPORT_FLAGS

# A resource blob in the printed module: name: "0x<4-byte alignment><data>".
_BLOB = re.compile(r'^\s*"?([\w.$-]+)"?\s*:\s*"0x([0-9A-Fa-f]+)"', re.MULTILINE)
_USE = re.compile(r"dense_resource<([\w.$-]+)>")
_TORCH_OP = re.compile(r'torch\.operator "(onnx\.\w+)"')
POSITIONAL = "#"  # the prefix of names given here, by position


def _name_torch_ops(text: str) -> str:
    """A location per one-line `torch.operator` that has none: `loc("#K onnx.Op")`."""
    lines = text.split("\n")
    k = 0
    for i, line in enumerate(lines):
        m = _TORCH_OP.search(line)
        if not m:
            continue
        k += 1
        stripped = line.rstrip()
        if stripped.endswith(")") and " loc(" in stripped or stripped.endswith("{"):
            continue  # has a location already, or opens a region
        lines[i] = f'{stripped} loc("{POSITIONAL}{k} {m.group(1)}")'
    return "\n".join(lines)


def _inline_resources(text: str) -> str:
    """`dense_resource<name>` → `dense<"0x...">` with the blob's bytes (less its alignment
    header), and the resource section dropped."""
    start = text.find("{-#")
    if start < 0:
        return text
    blobs = {m.group(1): m.group(2)[8:] for m in _BLOB.finditer(text[start:])}
    body = text[:start]
    missing = sorted({n for n in _USE.findall(body) if n not in blobs})
    if missing:
        raise QuantuneError(f"the module uses resources it does not hold: {', '.join(missing)}")
    return _USE.sub(lambda m: f'dense<"0x{blobs[m.group(1)]}">', body)


def import_mlir(data: bytes, source: str = "<stdin>") -> ImportedModel:
    """MLIR (text or bytecode; torch dialect or IREE input phase) → an ImportedModel."""
    if not data.startswith(b"ML\xefR"):  # text, not bytecode
        data = _name_torch_ops(data.decode(errors="replace")).encode()
    session = ir_session.new_session(IMPORT_FLAGS)
    try:
        with session.context:
            module = ir.Module.parse(data)
    except Exception as exc:  # MLIR reports a parse error as a bare Exception subclass
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuantuneError(f"{source}: not MLIR this IREE can read: {first}") from None
    with session.context:
        name, inputs, outputs = ir_session.entry_function(module)
    ok, diags, _ = ir_session.run_pipeline(session, module, compile_to="input")
    if not ok:
        raise QuantuneError(
            f"{source}: cannot lower to IREE's input phase: {ir_session.first_error(diags)[1]}"
        )
    text = _inline_resources(module.operation.get_asm(enable_debug_info=True))
    module = ir_session.parse_module(ir_session.new_session(), text.encode())
    return ImportedModel(
        path=source,
        sha256=hashlib.sha256(data).hexdigest(),
        bytecode=ir_session.to_bytecode(module),
        inputs=inputs,
        outputs=outputs,
        node_ops={},
        function=name,
    )

"""IR tests of the native passes: tests/passes/<flag>.mlir, checked with FileCheck.

The passes cannot be named in iree-opt (the C API exports no pass registration), so this driver
parses each `// -----` chunk, runs the pass through quantune_iree.native and checks the output.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from quantune_iree.errors import QuantuneError
from quantune_iree.ir import native
from quantune_iree.ir import session as ir_session

PASSES = Path(__file__).parents[1] / "passes"


def _quantize_all(module) -> None:  # noqa: ANN001 - ir.Module
    records = [
        native.LayerQuantization(layer.id, 0.5, 3, [0.25]) for layer in native.layer_table(module)
    ]
    native.quantize_layers(module, records)


def _form(layer) -> tuple[str, str, bool]:  # noqa: ANN001 - native layer
    """u8 for 1x1 convs, u8 im2col for node "i", i16 for the rest; channels-last, reciprocal.
    Node "v": Vulkan's i32 named form."""
    if layer.node == "i":
        return ("u8", "im2col", True)
    if layer.node == "v":
        return ("i32", "named", False)
    pointwise = layer.kind == "conv" and list(layer.weight_shape[2:]) == [1, 1]
    return ("u8" if pointwise or layer.kind == "matmul" else "i16", "channels_last", True)


def _quantize_all_forms(module) -> None:  # noqa: ANN001 - ir.Module
    records = [
        native.LayerQuantization(layer.id, 0.5, 3, [0.25], *_form(layer))
        for layer in native.layer_table(module)
    ]
    native.quantize_layers(module, records)


RUNNERS = {
    "quantune_insert_taps": lambda module: native.insert_taps(module),
    "quantune_quantize_layers": _quantize_all,
    "quantune_quantize_layers_forms": _quantize_all_forms,
    "quantune_channels_last": lambda module: native.channels_last(module),
}


def _filecheck() -> str:
    exe = shutil.which("filecheck") or str(Path(sys.executable).parent / "filecheck")
    if not Path(exe).exists():
        pytest.fail("the filecheck package is required for IR tests (pip install filecheck)")
    return exe


def _run_chunks(path: Path, run) -> str:  # noqa: ANN001 - run: module → Any
    outputs = []
    for chunk in path.read_text().split("// -----"):
        session = ir_session.new_session()
        with session.context:
            module = ir_session.parse_module(session, chunk.encode())
        text = ""
        try:
            run(module)
            native.verify(module)
        except QuantuneError as exc:
            text = f"// error: {str(exc).splitlines()[0]}\n"
        outputs.append(text + str(module))
    return "\n// -----\n".join(outputs)


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_pass_ir(name: str) -> None:
    path = PASSES / f"{name}.mlir"
    output = _run_chunks(path, RUNNERS[name])
    result = subprocess.run([_filecheck(), str(path)], input=output, capture_output=True, text=True)
    assert result.returncode == 0, f"FileCheck failed:\n{result.stderr}\n--- output ---\n{output}"

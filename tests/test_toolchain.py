"""For MLIR toolchains: `quantune-iree opt` in a pipe with iree-import-onnx and iree-compile, and
the passes on an iree.compiler.ir.Module, giving what `quantune-iree compile` gives."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import conv_stack_inputs, npy_folder
from quantune_iree import toolchain
from quantune_iree.backend.compile import compile_vmfb
from quantune_iree.backend.runtime import Runner
from quantune_iree.backend.targets import get_target
from quantune_iree.cli import main
from quantune_iree.errors import QuantuneError
from quantune_iree.ir import session as ir_session
from quantune_iree.ir.importer import IMPORT_FLAGS
from quantune_iree.model.plan import EqualizedPair, plan_from_json


def _tool(name: str) -> str:
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else (shutil.which(name) or pytest.skip(f"no {name}"))


@pytest.fixture(scope="module")
def compiled(conv_stack_path, tmp_path_factory):  # noqa: ANN001, ANN201
    """`quantune-iree compile` of conv_stack for MLIR toolchains (no equalization and no
    smoothing, which rewrite the ONNX graph): its plan and its vmfb."""
    out = tmp_path_factory.mktemp("compiled")
    calib = npy_folder(out / "calib", conv_stack_inputs(3, seed=1))
    args = ["--calib", calib, "--equalization", "none", "--smoothing", "none"]
    args += ["-o", str(out / "m.vmfb")]
    assert main(["compile", conv_stack_path, *args]) == 0
    return str(out / "m.plan.json"), (out / "m.vmfb").read_bytes()


def _same_numbers(a: bytes, b: bytes) -> None:
    for x in conv_stack_inputs(3, seed=9):
        np.testing.assert_array_equal(
            Runner(a, "conv_stack")([x])[0], Runner(b, "conv_stack")([x])[0]
        )


def test_iree_import_onnx_piped_through_opt_into_iree_compile(
    conv_stack_path, compiled, tmp_path
) -> None:
    plan, vmfb = compiled
    quantune = [sys.executable, "-m", "quantune_iree"]
    flags = subprocess.run(
        [*quantune, "opt", "--print-iree-flags"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert flags[0] == "--compile-from=input"
    out = tmp_path / "piped.vmfb"
    pipe = (
        f"{_tool('iree-import-onnx')} {conv_stack_path} -o - | "
        f"{' '.join(quantune)} opt --plan {plan} | "
        f"{_tool('iree-compile')} {' '.join(flags)} - -o {out}"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", pipe], capture_output=True, env=env)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    _same_numbers(out.read_bytes(), vmfb)


def test_the_passes_on_an_ir_module(conv_stack_path, compiled) -> None:
    """insert_taps and quantize_layers in place on an input-phase iree.compiler.ir.Module."""
    plan_path, vmfb = compiled
    torch_text = subprocess.run(
        [_tool("iree-import-onnx"), conv_stack_path, "-o", "-"], capture_output=True, check=True
    ).stdout
    model = toolchain.import_mlir(torch_text)
    session = ir_session.new_session(IMPORT_FLAGS)
    module = ir_session.parse_module(session, model.bytecode)
    layers = toolchain.module_layers(module)
    assert [lay.node.split(" ")[1] for lay in layers] == ["onnx.Conv"] * 4 + [
        "onnx.Gemm",
        "onnx.MatMul",
    ]
    plan = plan_from_json(open(plan_path).read(), plan_path)
    toolchain.quantize_layers(module, plan)
    built = compile_vmfb(ir_session.to_bytecode(module), get_target("host"))
    _same_numbers(built, vmfb)
    taps = toolchain.insert_taps(module, [1])
    assert taps.num_taps == 2


def test_opt_refusals(conv_stack_path, compiled, tmp_path, capsys) -> None:
    plan, _ = compiled
    mlir = tmp_path / "m.mlir"
    mlir.write_text("this is not MLIR")
    assert main(["opt", str(mlir), "--plan", plan]) == 2
    assert "not MLIR this IREE can read" in capsys.readouterr().err
    assert main(["opt", str(mlir)]) == 2
    assert "nothing to do" in capsys.readouterr().err
    text = open(plan).read()
    torch_text = subprocess.run(
        [_tool("iree-import-onnx"), conv_stack_path, "-o", "-"], capture_output=True, check=True
    ).stdout
    short = plan_from_json(text, plan)
    short = type(short)(short.model_sha256, short.config, short.layers[:5])
    with pytest.raises(QuantuneError, match="the plan has 5 layers, the module 6"):
        toolchain.opt(torch_text, short)
    equalized = dataclasses.replace(
        plan_from_json(text, plan), equalization=(EqualizedPair("a", "b", (1.0,)),)
    )
    with pytest.raises(QuantuneError, match="rescales 1 conv pairs.*--smoothing none"):
        toolchain.opt(torch_text, equalized)


def test_opt_help_explains_the_plan(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["opt", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--plan PLAN.json" in text and "become integer compute" in text
    assert "by position (op order)" in text

"""A BERT-style encoder end to end: sentences + tokenizer as calibration, weight MatMuls
quantized per channel (flattened to 2-D at import), the attention's activation x activation
MatMuls with both operands quantized, the build judged by the cosine similarity of its pooled
embedding; the same plan built for Cortex-A53 and run under qemu."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from models import tiny_encoder
from quantune_iree.backend.runtime import Runner, run_module_cli
from quantune_iree.cli import main
from quantune_iree.io.dataset import iter_samples
from quantune_iree.io.text import TextSource
from quantune_iree.ir.importer import import_onnx
from targets_env import QEMU, require_qemu
from text_data import write_sentences, write_tokenizer

pytest.importorskip("tokenizers")
ort = pytest.importorskip("onnxruntime")

SEQ = 8


@pytest.fixture(scope="module")
def built(tmp_path_factory):  # noqa: ANN201 - paths
    tmp = tmp_path_factory.mktemp("encoder")
    model = tmp / "enc.onnx"
    onnx.save(tiny_encoder(seed=3), str(model))
    tok = write_tokenizer(tmp / "tokenizer.json")
    calib = write_sentences(tmp / "calib.txt", n=24, seed=1)
    held = write_sentences(tmp / "eval.txt", n=12, seed=2)
    out = tmp / "enc.vmfb"
    args = ["compile", str(model), "--calib", calib, "--tokenizer", tok, "--seq-len", str(SEQ)]
    assert main([*args, "-o", str(out)]) == 0
    return model, tok, held, out


def _samples(model, tok: str, text: str) -> list[list[np.ndarray]]:  # noqa: ANN001
    inputs = import_onnx(str(model), {"input_ids": [1, SEQ], "attention_mask": [1, SEQ]}).inputs
    return list(iter_samples(text, inputs, TextSource(tok)))


def test_every_matmul_int8_but_the_most_sensitive_and_pooled_output_close(built) -> None:
    model, tok, held, out = built
    plan = json.loads(out.with_suffix(".plan.json").read_text())
    precision = {lp["node"]: lp["precision"] for lp in plan["layers"]}
    weights = [f"{w}/MatMul" for w in ("q", "k", "v", "o", "up", "down")]
    assert set(precision) == {*weights, "attn/QK", "attn/PV"}
    assert list(precision.values()).count("int8") == 7  # 10% of 8 stay FP32: one
    attention = [lp for lp in plan["layers"] if lp["node"] in ("attn/QK", "attn/PV")]
    for lp in attention:  # both operands' scales: the activation's and the second operand's
        if lp["precision"] == "int8":
            assert lp["activation"]["scale"] > 0 and len(lp["weight_scales"]) == 1
    side = json.loads((out.parent / "enc.vmfb.json").read_text())
    assert side["preprocessing"]["tokenizer"] == tok
    assert [o["shape"] for o in side["outputs"]] == [[1, SEQ, 16], [1, 16]]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    runner = Runner(out.read_bytes(), "tiny_encoder")
    sims = []
    for ids, mask in _samples(model, tok, held):
        want = session.run(["pooled"], {"input_ids": ids, "attention_mask": mask})[0].ravel()
        got = runner([ids, mask])[1].ravel()
        sims.append(want @ got / np.linalg.norm(want) / np.linalg.norm(got))
    assert np.mean(sims) > 0.99 and min(sims) > 0.98, sims
    assert min(sims) < 1 - 1e-6  # really quantized, not the FP32 model
    report = out.with_suffix(".report.md").read_text()
    assert "cosine similarity mean" in report


def test_the_plan_builds_for_cortex_a53_and_runs_under_qemu(built, tmp_path) -> None:
    tool = require_qemu()
    model, tok, held, out = built
    a53 = tmp_path / "a53.vmfb"
    plan = str(out.with_suffix(".plan.json"))
    args = ["compile", str(model), "--plan", plan, "--seq-len", str(SEQ), "--tokenizer", tok]
    assert main([*args, "--target-cpu", "cortex-a53", "-o", str(a53)]) == 0
    host = Runner(out.read_bytes(), "tiny_encoder")
    for ids, mask in _samples(model, tok, held)[:3]:
        got = run_module_cli(str(a53), "tiny_encoder", [ids, mask], 2, tool=tool, wrapper=QEMU)
        np.testing.assert_allclose(got[1], host([ids, mask])[1], rtol=1e-4, atol=1e-5)


def test_run_takes_a_text_models_token_arrays(built, tmp_path) -> None:
    """`quantune-iree run` on the encoder's vmfb: its sidecar names a tokenizer, not images."""
    from quantune_iree.io.run_vmfb import run_vmfb

    model, tok, held, out = built
    ids, mask = _samples(model, tok, held)[0]
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "mask.npy", mask)
    text = run_vmfb(str(out), [str(tmp_path / "ids.npy"), str(tmp_path / "mask.npy")])
    assert "pooled: float32[1, 16]" in text

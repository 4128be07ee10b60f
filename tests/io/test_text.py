"""Sentences as calibration data: tokenized to the model's fixed sequence length."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from models import tiny_encoder
from quantune_iree.errors import QuantuneError
from quantune_iree.io.dataset import check_calibration, iter_samples
from quantune_iree.io.text import TextSource, token_inputs
from quantune_iree.model.graph import TensorSpec
from text_data import write_sentences, write_tokenizer

tokenizers = pytest.importorskip("tokenizers")

INPUTS = [TensorSpec(n, (1, 6), "int64") for n in ("input_ids", "attention_mask")]


def test_sentences_become_padded_and_truncated_token_inputs(tmp_path) -> None:
    tok = write_tokenizer(tmp_path / "tokenizer.json")
    text = tmp_path / "s.txt"
    text.write_text("the cat sat\n\nthe dog ran on the red mat\nzebra\n")
    samples = list(iter_samples(str(text), INPUTS, TextSource(tok)))
    assert len(samples) == 3  # the empty line is skipped
    ids, mask = samples[0]
    assert ids.dtype == np.int64 and ids.shape == (1, 6)
    np.testing.assert_array_equal(ids, [[2, 4, 6, 8, 3, 0]])  # [CLS] the cat sat [SEP] [PAD]
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 1, 0]])
    np.testing.assert_array_equal(samples[1][0], [[2, 4, 7, 11, 9, 3]])  # truncated, [SEP] kept
    np.testing.assert_array_equal(samples[1][1], [[1, 1, 1, 1, 1, 1]])
    assert samples[2][0][0, 1] == 1  # unknown word → [UNK]
    assert len(list(iter_samples(str(text), INPUTS, TextSource(tok), limit=2))) == 2


def test_token_types_follow_the_input_dtype(tmp_path) -> None:
    tok = write_tokenizer(tmp_path / "tokenizer.json")
    text = tmp_path / "s.txt"
    text.write_text("a cat\n")
    specs = [
        TensorSpec("input_ids", (1, 4), "int32"),
        TensorSpec("token_type_ids", (1, 4), "int32"),
    ]
    ids, types = next(iter(iter_samples(str(text), specs, TextSource(tok))))
    assert ids.dtype == np.int32 and not types.any()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_tokenizer", "sentences need a tokenizer"),
        ("missing_tokenizer", "tokenizer file does not exist"),
        ("bad_tokenizer", "not a tokenizer.json"),
        ("empty", "no sentences"),
        ("folder", "needs a .txt file of sentences"),
        ("other_input", "the model also has pixels"),
        ("dynamic", "must all have shape [1, S]"),
    ],
)
def test_bad_text_calibration_is_one_clear_error(tmp_path, case: str, message: str) -> None:
    tok = write_tokenizer(tmp_path / "tokenizer.json")
    text = write_sentences(tmp_path / "s.txt")
    source: TextSource | None = TextSource(tok)
    inputs = INPUTS
    if case == "no_tokenizer":
        source = None
    elif case == "missing_tokenizer":
        source = TextSource(str(tmp_path / "nope.json"))
    elif case == "bad_tokenizer":
        (tmp_path / "bad.json").write_text(json.dumps({"model": 3}))
        source = TextSource(str(tmp_path / "bad.json"))
    elif case == "empty":
        (tmp_path / "s.txt").write_text("\n \n")
    elif case == "folder":
        text = str(tmp_path)
    elif case == "other_input":
        inputs = [*INPUTS, TensorSpec("pixels", (1, 6), "int64")]
    elif case == "dynamic":
        inputs = [TensorSpec("input_ids", (2, 6), "int64")]
    with pytest.raises(QuantuneError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_calibration(text, source)
        list(iter_samples(text, inputs, source))


def test_token_inputs_are_the_2d_integer_inputs(tmp_path) -> None:
    path = tmp_path / "enc.onnx"
    onnx.save(tiny_encoder(), str(path))
    assert token_inputs(str(path)) == ["input_ids", "attention_mask"]
    assert token_inputs(str(tmp_path / "missing.onnx")) == []

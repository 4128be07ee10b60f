"""Text calibration data for token-input models (BERT-style sentence encoders): one sentence per
line of a .txt file, tokenized with a Hugging Face `tokenizer.json` (the `tokenizers` package) and
padded or truncated to the model's sequence length, which is fixed at compile time (the inputs'
static shape, `--seq-len`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import QuantuneError
from ..model.graph import TensorSpec

TEXT_EXTENSIONS = (".txt",)
# Model input name → what of the encoding feeds it.
_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


@dataclass(frozen=True)
class TextSource:
    """How sentences become token inputs: the tokenizer file."""

    tokenizer: str


def token_inputs(model_path: str) -> list[str]:
    """The model's 2-D integer inputs (token ids, masks), which --seq-len shapes; none when the
    file cannot be read (the import then says why)."""
    import onnx

    try:
        model = onnx.load(model_path, load_external_data=False)
    except Exception:  # the import reports an unreadable model in one line
        return []
    initializers = {t.name for t in model.graph.initializer}
    integer = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
    return [
        value.name
        for value in model.graph.input
        if value.name not in initializers
        and value.type.tensor_type.elem_type in integer
        and len(value.type.tensor_type.shape.dim) == 2
    ]


def is_text(path: str) -> bool:
    return path.lower().endswith(TEXT_EXTENSIONS)


def _load_tokenizer(path: str, length: int):  # noqa: ANN202 - tokenizers.Tokenizer
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise QuantuneError(
            "text calibration needs the 'tokenizers' package (pip install tokenizers)"
        ) from None
    if not os.path.isfile(path):
        raise QuantuneError(f"{path}: tokenizer file does not exist")
    try:
        tok = Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuantuneError(f"{path}: not a tokenizer.json ({first})") from None
    pad = tok.token_to_id("[PAD]")
    tok.enable_truncation(max_length=length)
    tok.enable_padding(length=length, pad_id=0 if pad is None else pad)
    return tok


def sentences(path: str) -> list[str]:
    """The non-empty lines of a text file; refuses an unreadable or empty one."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as exc:
        raise QuantuneError(f"{path}: cannot read sentences ({exc})") from None
    lines = [line for line in lines if line]
    if not lines:
        raise QuantuneError(f"{path}: no sentences (the file is empty)")
    return lines


def sequence_length(path: str, inputs: Sequence[TensorSpec]) -> int:
    """The one sequence length of the model's token inputs ([1, S] each)."""
    unknown = [s.name for s in inputs if s.name not in _FIELDS]
    if unknown:
        raise QuantuneError(
            f"{path}: sentences can feed inputs named {', '.join(_FIELDS)}; the model also has "
            f"{', '.join(unknown)}"
        )
    shapes = {s.shape for s in inputs}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or next(iter(shapes))[0] != 1:
        raise QuantuneError(
            f"{path}: token inputs must all have shape [1, S] (--seq-len S); the model's are "
            + ", ".join(f"{s.name} {list(s.shape)}" for s in inputs)
        )
    return next(iter(shapes))[1]


def text_samples(
    path: str, source: TextSource, inputs: Sequence[TensorSpec], limit: int | None = None
) -> Iterator[list[np.ndarray]]:
    """One sample per sentence: each input as its [1, S] array in the input's dtype."""
    length = sequence_length(path, inputs)
    tok = _load_tokenizer(source.tokenizer, length)
    lines = sentences(path)[:limit]

    def generate() -> Iterator[list[np.ndarray]]:
        for line in lines:
            enc = tok.encode(line)
            yield [
                np.asarray(getattr(enc, _FIELDS[s.name]), dtype=s.dtype).reshape(s.shape)
                for s in inputs
            ]

    return generate()

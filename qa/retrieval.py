"""BM25, dense and fused retrieval over a loaded index.

Fusion is a linear blend of the per-query max-normalized BM25 score and the dense
score, with one BM25 weight for chunks in the question's language and another for
chunks in the other language: across languages BM25 sees almost no shared tokens
(only names and numbers), so plain rank fusion (RRF) lets its noise drown the dense
ranking. The dense score averages the cosine with the chunk and with its best
sentence, which finds the one sentence that answers among others that do not.
Weights are tuned per language pair on XQuAD dev (eval/retrieval.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from qa.config import Settings
from qa.embedding import encode
from qa.index import IndexData
from qa.text import detect_lang, tokenize
from qa.types import Passage

Mode = Literal["fused", "bm25", "dense"]
MODES: tuple[Mode, ...] = ("fused", "bm25", "dense")


@dataclass(frozen=True)
class FusionWeights:
    """The fusion knobs; their tuned defaults live in ``Settings`` only."""

    bm25_same: float
    bm25_cross: float
    sentence: float
    same_lang_bonus: float

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionWeights:
        return cls(settings.bm25_weight_same, settings.bm25_weight_cross, settings.sentence_weight,
                   settings.same_lang_bonus)


class Retriever:
    """Holds the loaded index and encoder; ``search`` is safe to call from many threads."""

    def __init__(self, index: IndexData, encoder: Any, weights: FusionWeights, candidates: int = 100) -> None:
        self.index = index
        self.encoder = encoder
        self.weights = weights
        self.candidates = candidates
        self._chunk_lang = np.array([c.lang for c in index.chunks])
        # Per chunk, the rows of its sentences: for the exact best-sentence score.
        self._sent_lo = np.array([c.sent_lo for c in index.chunks], dtype=np.int64)
        self._sent_hi = np.array([c.sent_hi for c in index.chunks], dtype=np.int64)
        self._token_max = _token_max_scores(index.bm25)

    @classmethod
    def from_settings(cls, index: IndexData, encoder: Any, settings: Settings) -> Retriever:
        return cls(index, encoder, FusionWeights.from_settings(settings), settings.candidates)

    def embed_query(self, query: str) -> np.ndarray:
        return encode(self.encoder, [query])[0]

    def search(self, query: str, k: int = 5, mode: Mode = "fused", qvec: np.ndarray | None = None) -> list[Passage]:
        """Top ``k`` chunks for ``query``, best first."""
        n = len(self.index.chunks)
        if n == 0 or not query.strip():
            return []
        k = min(k, n)
        bm25 = self._bm25_scores(query) if mode != "dense" else np.zeros(n, dtype=np.float32)
        if mode == "bm25":
            order = np.argsort(-bm25, kind="stable")[:k]
            return [self._passage(int(i), float(bm25[i]), float(bm25[i]), 0.0) for i in order]
        qvec = self.embed_query(query) if qvec is None else qvec
        cand = self._candidates(qvec, bm25 if mode == "fused" else None)
        dense = self._dense_scores(qvec, cand)
        if mode == "dense":
            score = dense
        else:
            bm25n = bm25[cand] / self._bm25_ceiling(query)
            same = self._chunk_lang[cand] == detect_lang(query)
            w = np.where(same, self.weights.bm25_same, self.weights.bm25_cross)
            score = _merge_languages(w * bm25n + (1.0 - w) * dense, dense, same, self.weights.same_lang_bonus)
        order = np.argsort(-score, kind="stable")[:k]
        return [self._passage(int(cand[i]), float(score[i]), float(bm25[cand[i]]), float(dense[i])) for i in order]

    def _bm25_scores(self, query: str) -> np.ndarray:
        tokens = tokenize(query)
        if not tokens:
            return np.zeros(len(self.index.chunks), dtype=np.float32)
        return np.asarray(self.index.bm25.get_scores(tokens), dtype=np.float32)

    def _bm25_ceiling(self, query: str) -> float:
        """What a chunk matching every query token as well as any chunk does would score.

        Dividing by it (instead of by the best score of this query) keeps BM25 on an
        absolute scale: a chunk that shares only a name with the question gets a small
        value even when it is the best lexical match there is, which is what happens
        across languages, where the best match is noise.
        """
        vocab = self.index.bm25.vocab_dict
        ceiling = sum(float(self._token_max[vocab[t]]) for t in tokenize(query) if t in vocab)
        return ceiling if ceiling > 0 else 1.0

    def _candidates(self, qvec: np.ndarray, bm25: np.ndarray | None) -> np.ndarray:
        """Union of the FAISS top chunks, the chunks of the FAISS top sentences and the
        BM25 top chunks; these are then scored exactly."""
        c = self.candidates
        q = qvec.reshape(1, -1)
        ids = [self.index.chunk_index.search(q, min(c, self.index.chunk_index.ntotal))[1][0]]
        ns = self.index.sentence_index.ntotal
        if ns:
            sent_ids = self.index.sentence_index.search(q, min(c, ns))[1][0]
            sent_ids = sent_ids[sent_ids >= 0]
            # a sentence row belongs to every chunk whose [sent_lo, sent_hi) holds it
            lo = np.searchsorted(self._sent_hi, sent_ids, side="right")
            hi = np.searchsorted(self._sent_lo, sent_ids, side="right")
            ids.append(_expand_ranges(lo, hi)[0])
        if bm25 is not None:
            # the top c in any order (np.unique sorts below): a partition, not a full sort
            # of every chunk's score (7.7 -> 3.2 ms a question at 1M chunks, bench/results/scale.md)
            ids.append(np.argpartition(-bm25, c - 1)[:c] if c < len(bm25) else np.arange(len(bm25)))
        cand = np.unique(np.concatenate(ids))
        return cand[cand >= 0]

    def _dense_scores(self, qvec: np.ndarray, cand: np.ndarray) -> np.ndarray:
        chunk_vecs = self.index.chunk_index.reconstruct_batch(cand)
        chunk_cos = chunk_vecs @ qvec
        w = self.weights.sentence
        if w == 0:
            return chunk_cos
        best = self.best_sentence_scores(qvec, cand, chunk_cos)
        return (1.0 - w) * chunk_cos + w * best

    def best_sentence_scores(self, qvec: np.ndarray, cand: np.ndarray, chunk_cos: np.ndarray) -> np.ndarray:
        """Per candidate chunk, the cosine of its sentence closest to ``qvec`` (a chunk
        without sentences: ``chunk_cos``, its own). One read-back and one product for all
        candidates: a call per chunk was a fifth of a question's retrieval time."""
        lo, hi = self._sent_lo[cand], self._sent_hi[cand]
        has = hi > lo
        best = np.array(chunk_cos, dtype=np.float32)
        if has.any():
            rows, offsets = _expand_ranges(lo[has], hi[has])
            cos = self.index.sentence_index.reconstruct_batch(rows) @ qvec
            best[has] = np.maximum.reduceat(cos, offsets)
        return best

    def _passage(self, i: int, score: float, bm25: float, dense: float) -> Passage:
        return Passage(chunk=self.index.chunks[i], score=score, bm25=bm25, dense=dense)


def _expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row of the ranges ``[lo[i], hi[i])`` in order, and where each range starts in
    that list (an empty range contributes no row), without a Python loop over ranges."""
    lens = np.maximum(hi - lo, 0)
    offsets = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
    return np.repeat(lo - offsets, lens) + np.arange(int(lens.sum())), offsets


def _merge_languages(fused: np.ndarray, dense: np.ndarray, same: np.ndarray, bonus: float) -> np.ndarray:
    """Order each language's chunks by the fused score, but compare the languages on
    the dense scale only.

    BM25 lifts every chunk in the question's language that shares words with it, and
    no chunk of the other language, so a fused score comparing the two always favours
    the question's language, even when only the other language has the answer. Here
    the i-th best chunk of a language (by fused score) gets that language's i-th best
    dense score, plus ``bonus`` for the question's own language (prefer it when the two
    are close). With one language only this is a monotone map of the fused ranking.
    """
    out = np.empty_like(fused)
    for group, extra in ((same, bonus), (~same, 0.0)):
        idx = np.flatnonzero(group)
        if len(idx):
            out[idx[np.argsort(-fused[idx], kind="stable")]] = np.sort(dense[idx])[::-1] + extra
    # ties (equal dense values) keep the fused order
    return out + 1e-9 * fused


def _token_max_scores(bm25: Any) -> np.ndarray:
    """Per vocabulary token, its highest BM25 contribution to any chunk (CSC column max)."""
    data, indptr = bm25.scores["data"], bm25.scores["indptr"]
    out = np.zeros(len(indptr) - 1, dtype=np.float32)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.maximum.reduceat(data, indptr[nonempty])[: len(nonempty)] if len(data) else 0
    return out

"""BM25, dense and fused retrieval over a loaded index.

Fusion is a linear blend of BM25 (divided by what the query could score at most) and the
dense score, with one BM25 weight for chunks in the question's language and another for
chunks in the other language, plus a small bonus for the question's own language.
Across languages BM25 sees almost no shared tokens (only names and numbers), so for a
chunk in the other language each question word also counts as its nearest words of that
language's script (by the encoder's word vectors: "batteries" -> "аккумуляторы"); without
that, BM25 lifted every chunk in the question's language above the one that answers in
the other. The dense score averages the cosine with the chunk and with its best
sentence, which finds the one sentence that answers among others that do not.
Weights are tuned on XQuAD dev (eval/retrieval.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from qa.config import Settings
from qa.embedding import encode
from qa.index import IndexData, WordVectors
from qa.text import detect_lang, stem_word, tokenize, words_by_stem
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
    translate_sim: float = 0.6
    translate_top: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionWeights:
        return cls(settings.bm25_weight_same, settings.bm25_weight_cross, settings.sentence_weight,
                   settings.same_lang_bonus, settings.translate_sim, settings.translate_top)


class Retriever:
    """Holds the loaded index and encoder; ``search`` is safe to call from many threads."""

    def __init__(self, index: IndexData, encoder: Any, weights: FusionWeights, candidates: int = 100,
                 vectors: WordVectors | None = None) -> None:
        self.index = index
        self.encoder = encoder
        self.weights = weights
        self.candidates = candidates
        self._chunk_lang = np.array([c.lang for c in index.chunks])
        # Per chunk, the rows of its sentences: for the exact best-sentence score.
        self._sent_lo = np.array([c.sent_lo for c in index.chunks], dtype=np.int64)
        self._sent_hi = np.array([c.sent_hi for c in index.chunks], dtype=np.int64)
        self._token_max = index.token_max  # computed at start-up, shared with the reading step
        # Per vocabulary word: its script and its stem's BM25 column (-1: none), for
        # ``_translated``; a question word's vector comes from ``vectors`` (in the service,
        # the answer step's, which holds those encoded with the question).
        vocab = index.bm25.vocab_dict
        by_row = sorted(index.words, key=index.words.__getitem__)
        self._word_col = np.array([vocab.get(stem_word(w), -1) for w in by_row], dtype=np.int64)
        cyrillic = np.array([detect_lang(w) == "ru" for w in by_row], dtype=bool)
        # the words a word of each script may be put into: the other script's, with a column
        self._targets = {"en": cyrillic & (self._word_col >= 0), "ru": ~cyrillic & (self._word_col >= 0)}
        self._translations: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.vectors = vectors or WordVectors(index, lambda words: encode(encoder, words))

    @classmethod
    def from_settings(cls, index: IndexData, encoder: Any, settings: Settings,
                      vectors: WordVectors | None = None) -> Retriever:
        return cls(index, encoder, FusionWeights.from_settings(settings), settings.candidates, vectors)

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
            same = self._chunk_lang[cand] == detect_lang(query)
            w = np.where(same, self.weights.bm25_same, self.weights.bm25_cross)
            score = (w * self.lexical(query, cand, bm25[cand], same) + (1.0 - w) * dense
                     + np.where(same, self.weights.same_lang_bonus, 0.0))
        order = np.argsort(-score, kind="stable")[:k]
        return [self._passage(int(cand[i]), float(score[i]), float(bm25[cand[i]]), float(dense[i])) for i in order]

    def _bm25_scores(self, query: str) -> np.ndarray:
        tokens = tokenize(query)
        if not tokens:
            return np.zeros(len(self.index.chunks), dtype=np.float32)
        return np.asarray(self.index.bm25.get_scores(tokens), dtype=np.float32)

    def lexical(self, query: str, cand: np.ndarray, bm25: np.ndarray, same: np.ndarray) -> np.ndarray:
        """BM25 of the chunks ``cand`` (sorted ids; ``bm25``: their scores; ``same``: in the
        question's language) divided by the query's ceiling. A chunk in the other language
        shares only names and numbers with the question, so it also scores the question's
        words put into its script (``_translated``), and is divided by the larger ceiling.
        Measured on XQuAD dev (eval/retrieval.md), each paragraph in one language: recall@1
        of questions whose paragraph is in the other language 0.628 -> 0.717, in their own
        0.960 -> 0.964; a corpus of the other language only: EN questions 0.809 -> 0.877,
        RU questions 0.848 -> 0.880."""
        ceiling = self._bm25_ceiling(query)
        out = bm25 / ceiling
        if not same.all():
            other = np.flatnonzero(~same)
            t, t_ceiling = self._translated(query, cand[other])
            out[other] = (bm25[other] + t) / max(ceiling, t_ceiling)
        return out

    def _translated(self, query: str, chunks: np.ndarray) -> tuple[np.ndarray, float]:
        """BM25 of ``chunks`` (sorted ids) for the query's words put into the other script:
        each word stands for its ``translate_top`` nearest vocabulary words of the other
        script at cosine >= ``translate_sim`` (``translations``), a chunk scoring the best
        of them times its cosine. Returns the scores and what a chunk matching every word
        as well as any chunk does would score."""
        out = np.zeros(len(chunks), dtype=np.float32)
        ceiling = 0.0
        data, indices, indptr = (self.index.bm25.scores[k] for k in ("data", "indices", "indptr"))
        # the postings' integer type: a search of another type copies the whole list
        keys = chunks.astype(indices.dtype, copy=False)
        for cols, sims in self.translations(query):
            best = np.zeros(len(chunks), dtype=np.float32)
            for col, sim in zip(cols.tolist(), sims.tolist(), strict=True):
                lo, hi = indptr[col], indptr[col + 1]
                docs = indices[lo:hi]  # sorted by chunk, as bm25s builds its columns
                if len(docs) > len(chunks):
                    # look the candidates up in the posting list, not the other way round:
                    # ~300 binary searches, whatever the corpus size (0.015 ms in a list of
                    # 1M postings, which searched among the candidates took 10 ms)
                    at = np.minimum(np.searchsorted(docs, keys), len(docs) - 1)
                    hit = docs[at] == keys
                    best[hit] = np.maximum(best[hit], sim * data[lo:hi][at[hit]])
                else:
                    at = np.searchsorted(chunks, docs)
                    hit = (at < len(chunks)) & (chunks[np.minimum(at, len(chunks) - 1)] == docs)
                    np.maximum.at(best, at[hit], sim * data[lo:hi][hit])
            out += best
            ceiling += float((sims * self._token_max[cols]).max()) if len(cols) else 0.0
        return out, ceiling

    def translations(self, query: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per content word of the query (one a stem): the BM25 columns of its nearest
        vocabulary words of the other script and their cosines, best first. Kept per word:
        visitors' questions share most of their words, and a word's list depends only on
        the index."""
        by_stem = words_by_stem(query)
        new = [(w, v) for w in by_stem.values() if w not in self._translations and (v := self.vectors.unit(w)) is not None]
        fresh: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if new and len(self._word_col):
            sims = _similarities(np.array([v for _w, v in new], dtype=np.float32), self.index.word_vecs)
            for (w, _v), row in zip(new, sims, strict=True):
                ok = np.flatnonzero((row >= self.weights.translate_sim) & self._targets[detect_lang(w)])
                ok = ok[np.argsort(-row[ok], kind="stable")]
                # the best word of each column (stem), the first translate_top columns
                _cols, first = np.unique(self._word_col[ok], return_index=True)
                keep = np.sort(first)[: self.weights.translate_top]
                fresh[w] = (self._word_col[ok[keep]], row[ok[keep]].astype(np.float32))
            if len(self._translations) > 100_000:  # a bound for a long-running server
                self._translations.clear()
            self._translations.update(fresh)
        # read once each (another thread may clear the dict meanwhile)
        return [t for w in by_stem.values() if (t := fresh.get(w) or self._translations.get(w)) is not None]

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


def _similarities(q: np.ndarray, vecs: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """``q @ vecs.T``; a memory-mapped float16 matrix (a large vocabulary, see
    qa/index.py: word_matrix) is read in blocks rather than converted whole."""
    if vecs.dtype == np.float32:
        return q @ vecs.T
    return np.concatenate([q @ np.asarray(vecs[i:i + block], dtype=np.float32).T
                           for i in range(0, len(vecs), block)] or [np.zeros((len(q), 0), np.float32)], axis=1)

"""The answer step with the reader: retrieved passages -> a verbatim sentence, a short
answer inside it, a confidence.

The reader (``qa.reader``) reads the question against one window packed with the
sentences of the top passages closest to the question (their cosines are in the index)
and scores every span and "no answer". Reading whole passages cost ~370 ms a question
(three passages, several windows each); one packed window of 160 word pieces costs ~44 ms
on two threads (docs/answering.md has both measured).
The short answer is the best span; the answer is the sentence(s) of the source holding
it, so every quote is a range of a source file. The confidence is a logistic function
of the span-versus-no-answer margin and the retrieval scores (``qa/reader_confidence.json``,
fitted by ``python -m qa.fit_confidence`` on XQuAD dev and on off-topic questions, never
on the sets the README reports).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.answering import Draft
from qa.config import READER_CONFIDENCE
from qa.index import IndexData
from qa.metrics import normalize_answer
from qa.reader import Reader, Span, Window
from qa.text import detect_lang, tokenize
from qa.types import Passage

FEATURES = ("margin", "score", "null", "retrieval", "dense", "rank", "gap", "agree", "sentence")
_DIGIT = re.compile(r"\d")


@functools.cache
def confidence_model(path: Path = READER_CONFIDENCE) -> dict[str, Any]:
    """The fitted file (``python -m qa.fit_confidence``): the confidence's logistic
    coefficients (``weights``), the span choice's (``selection``), the packing
    (``packing``) and how a follow-up is read (``follow_up``); before a fit, the margin alone."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"weights": {"margin": 0.5, "intercept": 0.0}}


def confidence(features: dict[str, float], weights: dict[str, float] | None = None) -> float:
    w = weights or confidence_model()["weights"]
    z = w.get("intercept", 0.0) + sum(w.get(k, 0.0) * v for k, v in features.items())
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass(frozen=True)
class Piece:
    """A sentence of the packed window: ``packed[offset:offset + end - start]`` is
    ``source(doc_id)[start:end]``, from the passage of rank ``rank``."""

    offset: int
    doc_id: str
    start: int
    end: int
    rank: int
    cosine: float  # the sentence's cosine to the question


@dataclass(frozen=True)
class Candidate:
    """A span the reader read: ``source(doc_id)[start:end]``, in the passage of rank
    ``span.key``, in a sentence of cosine ``cosine`` to the question."""

    span: Span
    passage: Passage
    text: str
    value: float
    lang: str = ""  # the question's
    doc_id: str = ""
    start: int = 0
    end: int = 0
    cosine: float = 0.0


@dataclass(frozen=True)
class Selection:
    """How the answer span is chosen among the spans read: the one of highest ``score +
    retrieval * passage's score + rank * passage's rank + same_lang * (passage in the
    question's language) + sentence * its sentence's cosine to the question``.
    The span score alone does not weigh where a span comes from (a passage retrieval ranks
    low, a sentence far from the question); the weights are fitted (``qa.fit_confidence``)."""

    retrieval: float = 0.0
    rank: float = 0.0
    same_lang: float = 0.0
    sentence: float = 0.0

    def value(self, c: Candidate) -> float:
        return (c.span.score + self.retrieval * c.passage.score + self.rank * c.span.key
                + self.same_lang * (c.passage.chunk.lang == c.lang) + self.sentence * c.cosine)


@dataclass(frozen=True)
class Packing:
    """What the window holds: the sentences of the top ``passages`` closest to the question,
    until ``window_tokens`` word pieces, question included. A sentence's closeness is its
    cosine plus ``lexical`` times the share of the question's words (weighed by their BM25
    weight) it holds (the sentence that names what is asked), plus ``rank`` times its
    passage's rank (0 for the top one: of sentences alike, the better passage's). Fitted
    (``qa.fit_confidence``)."""

    passages: int = 2
    window_tokens: int = 160
    lexical: float = 0.0
    rank: float = 0.0


@dataclass(frozen=True)
class ReadingSettings:
    # the ``spans`` best spans of the window are the candidates
    spans: int = 3
    # a second source's different figure is cited beside the best when its span scores
    # within this much (start + end logit) of it: sources that disagree
    conflict_margin: float = 2.0


def asked(question: str, earlier: str | None, order: str) -> str:
    """The question as the reader reads it. A follow-up ("And when was it founded?") needs
    the question before it for what it refers to; ``order`` (fitted): "current-first" puts
    the current question first, "earlier-first" the earlier one."""
    if not earlier:
        return question
    return f"{question} {earlier}" if order == "current-first" else f"{earlier} {question}"


class ReadingAnswerer:
    def __init__(self, index: IndexData, reader: Reader, settings: ReadingSettings | None = None,
                 fitted: dict[str, Any] | None = None, packing: Packing | None = None) -> None:
        self.index = index
        self.reader = reader
        self.settings = settings or ReadingSettings()
        fitted = fitted if fitted is not None else confidence_model()
        self.selection = Selection(**fitted.get("selection", {}))
        self.packing = packing or Packing(**fitted.get("packing", {}))
        self.follow_up = str(fitted.get("follow_up", "earlier-first"))
        self.weights: dict[str, float] = fitted["weights"]

    def pack(self, passages: list[Passage], qvec: np.ndarray, question: str,
             packing: Packing | None = None) -> tuple[str, list[Piece]]:
        """The window's text (the chosen sentences in document order; neighbours joined by
        a space, others by a line break, which no answer crosses) and where each came from."""
        pk = packing or self.packing
        holder: dict[int, int] = {}  # sentence row -> rank of the best passage holding it
        for k, p in enumerate(passages[:pk.passages]):
            for row in range(p.chunk.sent_lo, p.chunk.sent_hi):
                holder.setdefault(row, k)
        if not holder:
            return "", []
        rows = np.fromiter(holder, dtype=np.int64)
        cos = self.index.sentence_index.reconstruct_batch(rows) @ qvec
        cosine = dict(zip(rows.tolist(), cos.tolist(), strict=True))
        closeness = {r: c + pk.rank * holder[r] for r, c in cosine.items()}
        if pk.lexical:
            share = self._word_share(question, list(cosine))
            closeness = {r: c + pk.lexical * share[r] for r, c in closeness.items()}
        room = pk.window_tokens - self._pieces(question) - 4  # <s> q </s></s> window </s>
        chosen: set[int] = set()
        used = 0
        for row in sorted(closeness, key=lambda r: -closeness[r]):
            n = self._sentence_pieces(row)
            if used + n <= room:
                chosen.add(row)
                used += n
            if used >= room - 8:
                break
        order = self.index.manifest["doc_order"]
        text, pieces, prev = "", [], -2
        for r in sorted(chosen):
            d, a, b = (int(x) for x in self.index.sentences[r])
            if text:
                text += " " if r == prev + 1 and self.index.sentences[prev, 0] == d else "\n"
            doc_id = order[d]
            pieces.append(Piece(len(text), doc_id, a, b, holder[r], cosine.get(r, 0.0)))
            text += self.index.docs[doc_id].text[a:b]
            prev = r
        return text, pieces

    def candidates(self, passages: list[Passage], question: str, qvec: np.ndarray, earlier: str | None = None,
                   follow_up: str | None = None, selection: Selection | None = None,
                   packing: Packing | None = None) -> list[Candidate]:
        """Every span read in the packed window, best first."""
        q = asked(question, earlier, follow_up or self.follow_up)
        text, pieces = self.pack(passages, qvec, q, packing)
        if not pieces:
            return []
        sel = selection or self.selection
        lang = detect_lang(question)
        starts = [p.offset for p in pieces]
        out = []
        for spans in self.reader.read(q, [text], [Window(0, 0, len(text))], top=self.settings.spans):
            for s in spans:
                first = pieces[max(0, bisect.bisect_right(starts, s.start) - 1)]
                last = pieces[max(0, bisect.bisect_right(starts, s.end - 1) - 1)]
                start = first.start + s.start - first.offset
                end = last.start + s.end - last.offset
                span = Span(first.rank, s.start, s.end, s.score, s.null)
                c = Candidate(span, passages[first.rank], self.index.docs[first.doc_id].text[start:end], 0.0, lang,
                              first.doc_id, start, end, first.cosine)
                out.append(dataclasses.replace(c, value=sel.value(c)))
        return sorted(out, key=lambda c: -c.value)

    def __call__(self, passages: list[Passage], question: str, qvec: np.ndarray,
                 earlier: str | None = None) -> Draft | None:
        cands = self.candidates(passages, question, qvec, earlier)
        if not cands:
            return None
        best = cands[0]
        features = self.features(cands)
        a, b = self.sentences(best.doc_id, best.start, best.end)
        return Draft(best.doc_id, a, b, confidence(features, self.weights), best.start, best.end, features=features,
                     conflict=self._conflict(cands))

    @staticmethod
    def features(cands: list[Candidate]) -> dict[str, float]:
        """What the confidence is computed from: the best span's margin over "no answer",
        its score, the "no answer" score, its passage's retrieval scores and rank, its
        sentence's cosine to the question, how far the best different answer is behind
        (``gap``) and whether a span of another passage gives the same answer (``agree``)."""
        best = cands[0]
        second = next((c.value for c in cands[1:] if not _same_answer(c.text, best.text)), best.value - 10.0)
        agree = any(c.span.key != best.span.key and _same_answer(c.text, best.text) for c in cands[1:])
        return {"margin": best.span.margin, "score": best.span.score, "null": min(c.span.null for c in cands),
                "retrieval": best.passage.score, "dense": best.passage.dense, "rank": float(best.span.key),
                "gap": min(10.0, best.value - second), "agree": float(agree), "sentence": best.cosine}

    def sentences(self, doc_id: str, start: int, end: int) -> tuple[int, int]:
        """The range of the sentences of ``doc_id`` that hold ``[start, end)``."""
        rows = self._doc_sentences(doc_id)
        if not rows:
            return start, end
        starts = [a for a, _b in rows]
        i = max(0, bisect.bisect_right(starts, start) - 1)
        j = i
        while j + 1 < len(rows) and rows[j][1] < end:
            j += 1
        a, b = rows[i][0], rows[j][1]
        return min(a, start), max(b, end)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one answerer per loaded index
    def _doc_sentences(self, doc_id: str) -> list[tuple[int, int]]:
        rows = self.index.sentences[self.index.sentences[:, 0] == self.index.doc_rows[doc_id]]
        return sorted((int(a), int(b)) for _d, a, b in rows)

    @functools.lru_cache(maxsize=1 << 16)  # noqa: B019 - one answerer per loaded index
    def _sentence_pieces(self, row: int) -> int:
        return self._pieces(self.index.sentence(row).text)

    @functools.lru_cache(maxsize=1 << 16)  # noqa: B019 - one answerer per loaded index
    def _sentence_words(self, row: int) -> frozenset[str]:
        return frozenset(tokenize(self.index.sentence(row).text))

    def _word_share(self, question: str, rows: list[int]) -> dict[int, float]:
        """Per sentence row, the share of the question's words it holds, each weighed by its
        BM25 weight. (The question's words put into the other language's script, as the
        retriever scores a passage of the other language, added nothing on XQuAD dev's half 0:
        0.844 -> 0.846 right answers, 1,200 questions.)"""
        weights = self._question_words(question)
        total = sum(weights.values()) or 1.0
        return {r: sum(weights.get(t, 0.0) for t in self._sentence_words(r)) / total for r in rows}

    def _question_words(self, question: str) -> dict[str, float]:
        # a word's weight: its highest BM25 contribution to a chunk (rare words weigh more)
        vocab = self.index.bm25.vocab_dict
        return {t: float(self.index.token_max[vocab[t]]) for t in set(tokenize(question)) if t in vocab}

    def _pieces(self, text: str) -> int:
        return len(self.reader.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _conflict(self, cands: list[Candidate]) -> tuple[str, int, int, int, int] | None:
        """Another document's different figure for the same question, read nearly as well:
        sources that disagree (a count of 2019 and one of 2025) are both cited."""
        best = cands[0]
        if not _DIGIT.search(best.text):
            return None
        for c in cands[1:]:
            if c.span.score < best.span.score - self.settings.conflict_margin:
                continue
            if (c.doc_id != best.doc_id and c.span.margin > 0 and _DIGIT.search(c.text)
                    and _figures(c.text) != _figures(best.text)):
                a, b = self.sentences(c.doc_id, c.start, c.end)
                return c.doc_id, a, b, c.start, c.end
        return None


def _figures(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\d+(?:[.,]\d+)?", text))


def _same_answer(x: str, y: str) -> bool:
    a, b = normalize_answer(x), normalize_answer(y)
    return bool(a) and (a in b or b in a)


def fitted_packing(settings: Any) -> Packing:
    """The fitted packing, with what ``settings`` (QA_READER_PASSAGES, QA_READER_WINDOW_TOKENS) sets."""
    fitted = Packing(**confidence_model().get("packing", {}))
    return dataclasses.replace(fitted, passages=settings.reader_passages or fitted.passages,
                               window_tokens=settings.reader_window_tokens or fitted.window_tokens)

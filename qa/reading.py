"""The answer step with the reader: retrieved passages -> a verbatim sentence, a short
answer inside it, a confidence.

The reader (``qa.reader``) reads the question against windows of the top passages and
scores every span and "no answer". The short answer is the best span; the answer is the
sentence(s) of the source holding it, so every quote is a range of a source file. The
confidence is a logistic function of the span-versus-no-answer margin and the retrieval
scores (``qa/reader_confidence.json``, fitted by ``python -m qa.fit_confidence`` on
XQuAD dev and on off-topic questions, never on the sets the README reports).
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.answering import Draft
from qa.config import READER_CONFIDENCE
from qa.index import IndexData
from qa.metrics import normalize_answer
from qa.reader import Reader, Span
from qa.text import detect_lang
from qa.types import Passage

FEATURES = ("margin", "score", "null", "retrieval", "dense", "rank", "gap", "agree")
_DIGIT = re.compile(r"\d")


@functools.cache
def confidence_model(path: Path = READER_CONFIDENCE) -> dict[str, Any]:
    """The fitted file (``python -m qa.fit_confidence``): the confidence's logistic
    coefficients (``weights``), the span choice's (``selection``) and how a follow-up is read
    (``follow_up``); before a fit, the margin alone."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"weights": {"margin": 0.5, "intercept": 0.0}}


def confidence(features: dict[str, float], weights: dict[str, float] | None = None) -> float:
    w = weights or confidence_model()["weights"]
    z = w.get("intercept", 0.0) + sum(w.get(k, 0.0) * v for k, v in features.items())
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass(frozen=True)
class Selection:
    """How the answer span is chosen among the spans of every window read: the one of
    highest ``score + null * window's no-answer + retrieval * passage's score + rank *
    passage's rank + same_lang * (passage in the question's language)``. A span's score
    alone is not comparable across windows (a window the reader finds unrelated scores its
    best span lower *and* "no answer" higher), nor across passages retrieval ranks apart;
    the weights are fitted (``qa.fit_confidence``)."""

    null: float = 0.0
    retrieval: float = 0.0
    rank: float = 0.0
    same_lang: float = 0.0

    def value(self, span: Span, passage: Passage, lang: str) -> float:
        return (span.score + self.null * span.null + self.retrieval * passage.score + self.rank * span.key
                + self.same_lang * (passage.chunk.lang == lang))


@dataclass(frozen=True)
class Candidate:
    """A span the reader read, with the passage it is in."""

    span: Span
    passage: Passage
    text: str
    value: float
    lang: str = ""  # the question's


@dataclass(frozen=True)
class ReadingSettings:
    # The top ``passages`` are read whole, in one batch of windows of ``window_tokens``
    # word pieces (question included) overlapping by ``stride``; the ``spans`` best spans
    # of each window are the candidates.
    passages: int = 3
    window_tokens: int = 256
    stride: int = 64
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
                 fitted: dict[str, Any] | None = None) -> None:
        self.index = index
        self.reader = reader
        self.settings = settings or ReadingSettings()
        fitted = fitted if fitted is not None else confidence_model()
        self.selection = Selection(**fitted.get("selection", {}))
        self.follow_up = str(fitted.get("follow_up", "earlier-first"))
        self.weights: dict[str, float] = fitted["weights"]

    def candidates(self, passages: list[Passage], question: str, earlier: str | None = None,
                   follow_up: str | None = None, selection: Selection | None = None) -> list[Candidate]:
        """Every span read in the top passages, best first."""
        top = passages[:self.settings.passages]
        if not top:
            return []
        q = asked(question, earlier, follow_up or self.follow_up)
        texts = [p.chunk.text for p in top]
        windows = [w for k, text in enumerate(texts)
                   for w in self.reader.windows(text, k, q, self.settings.window_tokens, self.settings.stride)]
        sel = selection or self.selection
        lang = detect_lang(question)
        out = [Candidate(s, top[s.key], texts[s.key][s.start:s.end], sel.value(s, top[s.key], lang), lang)
               for spans in self.reader.read(q, texts, windows, top=self.settings.spans) for s in spans]
        return sorted(out, key=lambda c: -c.value)

    def __call__(self, passages: list[Passage], question: str, earlier: str | None = None) -> Draft | None:
        cands = self.candidates(passages, question, earlier)
        if not cands:
            return None
        best = cands[0]
        features = self.features(cands)
        p = best.passage
        s0, s1 = p.chunk.start + best.span.start, p.chunk.start + best.span.end
        a, b = self.sentences(p.chunk.doc_id, s0, s1)
        conflict = self._conflict(cands)
        return Draft(p.chunk.doc_id, a, b, confidence(features, self.weights), s0, s1, features=features,
                     conflict=conflict)

    @staticmethod
    def features(cands: list[Candidate]) -> dict[str, float]:
        """What the confidence is computed from: the best span's margin over its window's
        "no answer", its score, the most confident "no answer" of any window, its passage's
        retrieval scores and rank, how far the best different answer is behind (``gap``) and
        whether another passage gives the same answer (``agree``)."""
        best = cands[0]
        second = next((c.value for c in cands[1:] if not _same_answer(c.text, best.text)), best.value - 10.0)
        agree = any(c.span.key != best.span.key and _same_answer(c.text, best.text) for c in cands[1:])
        return {"margin": best.span.margin, "score": best.span.score, "null": min(c.span.null for c in cands),
                "retrieval": best.passage.score, "dense": best.passage.dense, "rank": float(best.span.key),
                "gap": min(10.0, best.value - second), "agree": float(agree)}

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
        order = self.index.manifest["doc_order"]
        d = order.index(doc_id)
        rows = self.index.sentences[self.index.sentences[:, 0] == d]
        return sorted((int(a), int(b)) for _d, a, b in rows)

    def _conflict(self, cands: list[Candidate]) -> tuple[str, int, int, int, int] | None:
        """Another document's different figure for the same question, read nearly as well:
        sources that disagree (a count of 2019 and one of 2025) are both cited."""
        best = cands[0]
        if not _DIGIT.search(best.text):
            return None
        for c in cands[1:]:
            if c.span.score < best.span.score - self.settings.conflict_margin:
                continue
            chunk = c.passage.chunk
            if (chunk.doc_id != best.passage.chunk.doc_id and c.span.margin > 0 and _DIGIT.search(c.text)
                    and _figures(c.text) != _figures(best.text)):
                s0, s1 = chunk.start + c.span.start, chunk.start + c.span.end
                a, b = self.sentences(chunk.doc_id, s0, s1)
                return chunk.doc_id, a, b, s0, s1
        return None


def _figures(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\d+(?:[.,]\d+)?", text))


def _same_answer(x: str, y: str) -> bool:
    a, b = normalize_answer(x), normalize_answer(y)
    return bool(a) and (a in b or b in a)



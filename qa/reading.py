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

from qa.answering import Draft
from qa.config import READER_CONFIDENCE
from qa.index import IndexData
from qa.metrics import normalize_answer
from qa.reader import Reader, Span
from qa.types import Passage

FEATURES = ("margin", "score", "null", "retrieval", "dense", "rank", "read", "agree")
_DIGIT = re.compile(r"\d")


@functools.cache
def confidence_model(path: Path = READER_CONFIDENCE) -> dict[str, float]:
    """Logistic coefficients per feature and ``intercept``; before a fit, the margin alone."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))["weights"]
    return {"margin": 0.5, "intercept": 0.0}


def confidence(features: dict[str, float], weights: dict[str, float] | None = None) -> float:
    w = weights or confidence_model()
    z = w.get("intercept", 0.0) + sum(w.get(k, 0.0) * v for k, v in features.items())
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass(frozen=True)
class ReadingSettings:
    # Passages are read in their retrieval order, each whole (in windows of
    # ``window_tokens`` word pieces, question included, overlapping by ``stride``), until a
    # span's margin over "no answer" reaches ``stop_margin`` or ``passages`` are read: most
    # questions are answered from the first passage at a third of the cost of reading three.
    passages: int = 3
    window_tokens: int = 256
    stride: int = 64
    stop_margin: float = 4.0
    # a second source's different figure is cited beside the best when its span scores
    # within this much (start + end logit) of it: sources that disagree
    conflict_margin: float = 2.0


class ReadingAnswerer:
    def __init__(self, index: IndexData, reader: Reader, settings: ReadingSettings | None = None) -> None:
        self.index = index
        self.reader = reader
        self.settings = settings or ReadingSettings()

    def __call__(self, passages: list[Passage], question: str, earlier: str | None = None) -> Draft | None:
        top = passages[:self.settings.passages]
        if not top:
            return None
        # a follow-up is read with the question before it, the current one last
        asked = f"{earlier} {question}" if earlier else question
        texts = [p.chunk.text for p in top]
        spans: list[Span] = []
        read = 0
        while read < len(texts) and not (spans and max(s.margin for s in spans) >= self.settings.stop_margin):
            spans += self._read(asked, texts, read)
            read += 1
        if not spans:
            return None
        null = min(s.null for s in spans)  # the most confident "no answer" of any window
        best = max(spans, key=lambda s: s.score)
        # A figure is checked against one more source, if one is left, so that sources that
        # disagree are both cited (``_conflict``); what it reads never replaces the answer.
        checked = spans
        if _DIGIT.search(texts[best.key][best.start:best.end]):
            other = [k for k in range(read, len(texts)) if top[k].chunk.doc_id != top[best.key].chunk.doc_id]
            if other:
                checked = spans + self._read(asked, texts, other[0])
        p = top[best.key]
        doc_id = p.chunk.doc_id
        s0, s1 = p.chunk.start + best.start, p.chunk.start + best.end
        a, b = self.sentences(doc_id, s0, s1)
        best_text = texts[best.key][best.start:best.end]
        same = sum(1 for s in spans if s is not best and _same_answer(texts[s.key][s.start:s.end], best_text))
        features = {"margin": best.score - null, "score": best.score, "null": null, "retrieval": p.score,
                    "dense": p.dense, "rank": float(best.key), "read": float(read), "agree": float(same > 0)}
        conflict = self._conflict(top, texts, checked, best)
        return Draft(doc_id, a, b, confidence(features), s0, s1, features=features, conflict=conflict)

    def _read(self, asked: str, texts: list[str], key: int) -> list[Span]:
        """The best span of each window of ``texts[key]``."""
        windows = self.reader.windows(texts[key], key, asked, self.settings.window_tokens, self.settings.stride)
        return [s[0] for s in self.reader.read(asked, texts, windows) if s]

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

    def _conflict(self, top: list[Passage], texts: list[str], spans: list[Span],
                  best: Span) -> tuple[str, int, int, int, int] | None:
        """Another document's different figure for the same question, read nearly as well."""
        best_text = texts[best.key][best.start:best.end]
        best_doc = top[best.key].chunk.doc_id
        if not _DIGIT.search(best_text):
            return None
        for s in sorted(spans, key=lambda s: -s.score):
            chunk = top[s.key].chunk
            text = texts[s.key][s.start:s.end]
            if s.score < best.score - self.settings.conflict_margin or s.score <= s.null:
                break
            if chunk.doc_id != best_doc and _DIGIT.search(text) and _figures(text) != _figures(best_text):
                s0, s1 = chunk.start + s.start, chunk.start + s.end
                a, b = self.sentences(chunk.doc_id, s0, s1)
                return chunk.doc_id, a, b, s0, s1
        return None


def _figures(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\d+(?:[.,]\d+)?", text))


def _same_answer(x: str, y: str) -> bool:
    a, b = normalize_answer(x), normalize_answer(y)
    return bool(a) and (a in b or b in a)



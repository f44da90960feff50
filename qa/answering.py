"""From retrieved passages to a verbatim answer span with a confidence.

Every answer is a range of a source document, never rebuilt text: the quote a
citation shows is ``doc.text[start:end]``, so the invariants of DESIGN.md hold by
construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa.index import IndexData
from qa.types import Citation, Document, Passage

NOT_FOUND = {
    "en": "I could not find an answer to this in my sources.",
    "ru": "В моих источниках нет ответа на этот вопрос.",
}


@dataclass(frozen=True)
class Draft:
    """An answer before abstention: a sentence range of one document, an optional
    short-answer range inside it, and the answerer's confidence in [0, 1]."""

    doc_id: str
    start: int
    end: int
    confidence: float
    short_start: int | None = None
    short_end: int | None = None


def citation(n: int, doc: Document, start: int, end: int) -> Citation:
    return Citation(n=n, doc_id=doc.doc_id, title=doc.title, url=doc.url, lang=doc.lang,
                    start=start, end=end, quote=doc.text[start:end])


def first_sentence(index: IndexData, passages: list[Passage]) -> Draft | None:
    """Baseline: the first sentence of the top passage, confidence = its retrieval score.

    It is what the harness reports until a real answer step exists, and stays in the
    report as the floor every answerer must beat.
    """
    if not passages:
        return None
    top = passages[0]
    chunk = top.chunk
    if chunk.sent_hi > chunk.sent_lo:
        s = index.sentence(chunk.sent_lo)
        start, end = max(s.start, chunk.start), min(s.end, chunk.end)
    else:
        start, end = chunk.start, chunk.end
    return Draft(chunk.doc_id, start, end, confidence=min(1.0, max(0.0, top.score)))


ANSWERERS = {"first-sentence": first_sentence}

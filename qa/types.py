"""The small frozen records every stage passes around.

All offsets are Python string offsets into the source file's text exactly as stored
(read as UTF-8 with newline translation off), so ``text[start:end]`` reproduces a quote.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


class ModelFileError(ValueError):
    """A model file (the base model, the reader's weights) is missing, damaged or not in
    its format. Here, not beside the loader, so the CLI names it without importing torch."""


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    lang: str
    title: str
    url: str | None = None
    date: str | None = None
    publisher: str | None = None
    sha256: str = ""
    # Where each page starts (a PDF's page map, from its .meta.json): page N is
    # ``text[pages[N - 1]:pages[N]]``. Empty for sources without pages.
    pages: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.pages, tuple):  # read back from JSON as a list
            object.__setattr__(self, "pages", tuple(self.pages))

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding character ``offset``, or None without a page map."""
        if not self.pages:
            return None
        return max(1, bisect.bisect_right(self.pages, offset))


@dataclass(frozen=True)
class Span:
    """A half-open character range ``[start, end)`` of a document."""

    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str
    lang: str
    # Sentences of this chunk are rows ``sent_lo .. sent_hi - 1`` of the sentence table.
    sent_lo: int = 0
    sent_hi: int = 0


@dataclass(frozen=True)
class Sentence:
    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with the scores that ranked it."""

    chunk: Chunk
    score: float
    bm25: float
    dense: float


@dataclass(frozen=True)
class Citation:
    """A numbered pointer to ``source_text(doc_id)[start:end] == quote``."""

    n: int
    doc_id: str
    title: str
    url: str | None
    lang: str
    start: int
    end: int
    quote: str
    # the source's publication date (ISO), when known: sources that disagree are cited
    # newest first, and the reader sees which is which
    date: str | None = None
    # the page the quote starts on, for sources with a page map (PDFs); None otherwise
    page: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"n": self.n, "doc_id": self.doc_id, "title": self.title, "url": self.url, "lang": self.lang,
                "date": self.date, "page": self.page, "start": self.start, "end": self.end, "quote": self.quote}


@dataclass(frozen=True)
class Answer:
    """What a question gets: a verbatim answer with citations, or an abstention.

    ``passages`` is the retrieval ranking the answer was drawn from; it is kept for the
    eval harness and the "see also" list, and is not part of the answer JSON.
    """

    question: str
    lang: str
    abstained: bool
    answer: str | None
    short_answer: str | None
    confidence: float
    citations: tuple[Citation, ...] = ()
    message: str | None = None
    see_also: tuple[Citation, ...] = ()
    passages: tuple[Passage, ...] = ()
    # Kept out of the JSON: what the confidence was computed from (eval records).
    features: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "lang": self.lang,
            "abstained": self.abstained,
            "answer": self.answer,
            "short_answer": self.short_answer,
            "confidence": round(self.confidence, 4),
            "citations": [c.to_json() for c in self.citations],
            "message": self.message,
            "see_also": [c.to_json() for c in self.see_also],
        }

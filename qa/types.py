"""The small frozen records every stage passes around.

All offsets are Python string offsets into the source file's text exactly as stored
(read as UTF-8 with newline translation off), so ``text[start:end]`` reproduces a quote.
"""

from __future__ import annotations

from dataclasses import dataclass


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

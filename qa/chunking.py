"""Sentence-aware chunks with exact offsets, packed by langchain-text-splitters.

razdel finds sentence boundaries in both languages; langchain's splitter packs whole
sentences into chunks of ``chunk_size`` characters with ``chunk_overlap`` characters
of whole sentences repeated, so no chunk starts or ends mid-sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from langchain_text_splitters import TextSplitter

from qa.text import sentence_spans
from qa.types import Chunk, Document, Sentence, Span

# langchain warns for every sentence longer than a chunk; such a sentence simply
# becomes a chunk of its own, which is what we want.
logging.getLogger("langchain_text_splitters.base").setLevel(logging.ERROR)


class SentenceSplitter(TextSplitter):
    """Pieces are sentences *with* their trailing whitespace, joined with "", so every
    chunk is a verbatim substring of the input (langchain only strips its ends)."""

    def split_text(self, text: str) -> list[str]:
        return self._merge_splits(sentence_pieces(text), "")


def sentence_pieces(text: str) -> list[str]:
    starts = [s.start for s in sentence_spans(text)]
    if not starts:
        return [text] if text.strip() else []
    starts[0] = 0
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def chunk_spans(text: str, region: Span, splitter: SentenceSplitter) -> list[Span]:
    """Chunk ``text[region]``; spans are in ``text`` coordinates."""
    body = text[region.start : region.end]
    out: list[Span] = []
    search_from = 0
    for piece in splitter.split_text(body):
        at = body.find(piece, search_from)
        if at < 0:  # cannot happen for verbatim pieces; fail loudly rather than mis-cite
            raise AssertionError("chunk is not a substring of its region")
        out.append(Span(region.start + at, region.start + at + len(piece)))
        search_from = at + 1
    return out


def chunk_document(
    doc: Document,
    regions: Iterable[Span],
    chunk_size: int,
    chunk_overlap: int,
    sentence_offset: int = 0,
) -> tuple[list[Chunk], list[Sentence]]:
    """Chunks of a document's content regions and the sentences they are made of.

    ``sentence_offset`` is the row of this document's first sentence in the global
    sentence table, so ``Chunk.sent_lo/sent_hi`` index that table directly.
    """
    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    chunks: list[Chunk] = []
    sentences: list[Sentence] = []
    for region in regions:
        sents = list(sentence_spans(doc.text, region.start, region.end))
        first = sentence_offset + len(sentences)
        sentences.extend(Sentence(doc.doc_id, s.start, s.end, doc.text[s.start : s.end]) for s in sents)
        lo = 0
        for span in chunk_spans(doc.text, region, splitter):
            # sentences are sorted; advance to the first one inside this chunk
            while lo < len(sents) and sents[lo].end <= span.start:
                lo += 1
            hi = lo
            while hi < len(sents) and sents[hi].start < span.end:
                hi += 1
            chunks.append(
                Chunk(
                    chunk_id=f"{doc.doc_id}:{span.start}-{span.end}",
                    doc_id=doc.doc_id,
                    start=span.start,
                    end=span.end,
                    text=doc.text[span.start : span.end],
                    lang=doc.lang,
                    sent_lo=first + lo,
                    sent_hi=first + hi,
                )
            )
    return chunks, sentences

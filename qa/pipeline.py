"""Question -> Answer: retrieval, the answer step, abstention and citations.

``QAService`` holds the loaded state (index, encoder, retriever) and is what the CLI,
the server and the eval harness call; it is safe to share between threads.
"""

from __future__ import annotations

from typing import Any

from qa.answering import ANSWERERS, NOT_FOUND, Draft, citation
from qa.config import Settings
from qa.index import IndexData
from qa.retrieval import Mode, Retriever
from qa.text import detect_lang
from qa.types import Answer, Citation, Passage


class QAService:
    def __init__(self, index: IndexData, encoder: Any, settings: Settings) -> None:
        self.index = index
        self.settings = settings
        self.retriever = Retriever.from_settings(index, encoder, settings)

    def ask(self, question: str, *, mode: Mode = "fused", answerer: str | None = None,
            threshold: float | None = None) -> Answer:
        """Answer ``question``; below ``threshold`` (default: Settings) it abstains."""
        question = question.strip()
        lang = detect_lang(question)
        passages = self.retriever.search(question, self.settings.answer_passages, mode) if question else []
        draft = ANSWERERS[answerer or self.settings.answerer](self.index, passages)
        limit = self.settings.abstain_threshold if threshold is None else threshold
        if draft is None or draft.confidence < limit:
            return Answer(question=question, lang=lang, abstained=True, answer=None, short_answer=None,
                          confidence=draft.confidence if draft else 0.0, message=NOT_FOUND[lang],
                          see_also=self._see_also(passages), passages=tuple(passages))
        return self._answer(question, lang, draft, passages)

    def _answer(self, question: str, lang: str, draft: Draft, passages: list[Passage]) -> Answer:
        doc = self.index.docs[draft.doc_id]
        cite = citation(1, doc, draft.start, draft.end)
        short = None
        if draft.short_start is not None and draft.short_end is not None:
            short = doc.text[draft.short_start:draft.short_end]
        return Answer(question=question, lang=lang, abstained=False, answer=cite.quote, short_answer=short,
                      confidence=draft.confidence, citations=(cite,), passages=tuple(passages))

    def _see_also(self, passages: list[Passage], n: int = 3) -> tuple[Citation, ...]:
        out: list[Citation] = []
        for p in passages:
            if len(out) == n:
                break
            if all(c.doc_id != p.chunk.doc_id for c in out):
                out.append(citation(len(out) + 1, self.index.docs[p.chunk.doc_id], p.chunk.start, p.chunk.end))
        return tuple(out)

"""Question -> Answer: retrieval, the answer step, abstention and citations.

``QAService`` holds the loaded state (index, encoder, retriever, extractor) and is what
the CLI, the server and the eval harness call; it is safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qa.answering import NOT_FOUND, Draft, Extractor, citation, first_sentence
from qa.config import Settings
from qa.embedding import encode
from qa.index import IndexData
from qa.questions import question_type, resolve_follow_up
from qa.retrieval import Mode, Retriever
from qa.text import detect_lang
from qa.types import Answer, Citation, Passage


class QAService:
    def __init__(self, index: IndexData, encoder: Any, settings: Settings) -> None:
        self.index = index
        self.settings = settings
        self.retriever = Retriever.from_settings(index, encoder, settings)
        self.extractor = Extractor(index, embed=lambda words: encode(encoder, words))

    def ask(self, question: str, history: Sequence[str] = (), *, mode: Mode = "fused", answerer: str | None = None,
            threshold: float | None = None) -> Answer:
        """Answer ``question`` (``history``: earlier questions, oldest first, for follow-ups);
        below ``threshold`` (default: Settings) it abstains in the question's language."""
        question = question.strip()
        lang = detect_lang(question)
        query = resolve_follow_up(question, list(history))
        passages: list[Passage] = []
        draft: Draft | None = None
        if question:
            # the question and its words the index has no vector for, in one encoder call
            # (a call costs ~2 ms whatever it holds; two calls cost one more)
            missing = self.extractor.missing_words(query)
            vecs = encode(self.retriever.encoder, [query, *missing])
            qvec = vecs[0]
            self.extractor.remember(missing, vecs[1:])
            passages = self.retriever.search(query, self.settings.answer_passages, mode, qvec=qvec if mode != "bm25" else None)
            if (answerer or self.settings.answerer) == "first-sentence":
                draft = first_sentence(self.index, passages)
            else:
                draft = self.extractor(self.index, passages, question=question, query=query,
                                       qtype=question_type(question), lang=lang, qvec=qvec)
        limit = self.settings.abstain_threshold if threshold is None else threshold
        if draft is None or draft.confidence < limit:
            return Answer(question=question, lang=lang, abstained=True, answer=None, short_answer=None,
                          confidence=draft.confidence if draft else 0.0, message=NOT_FOUND[lang],
                          see_also=self._see_also(passages), passages=tuple(passages))
        return self._answer(question, lang, draft, passages)

    def _answer(self, question: str, lang: str, draft: Draft, passages: list[Passage]) -> Answer:
        spans = [(draft.doc_id, draft.start, draft.end, draft.short_start, draft.short_end)]
        if draft.conflict is not None:
            spans.append(draft.conflict)
            # sources that disagree: the newest first, and the answer is the newest one's
            spans.sort(key=lambda sp: self.index.docs[sp[0]].date or "", reverse=True)
        cites = tuple(citation(n, self.index.docs[d], a, b) for n, (d, a, b, _s, _e) in enumerate(spans, 1))
        doc_id, _a, _b, s0, s1 = spans[0]
        short = self.index.docs[doc_id].text[s0:s1] if s0 is not None and s1 is not None else None
        return Answer(question=question, lang=lang, abstained=False, answer=cites[0].quote, short_answer=short,
                      confidence=draft.confidence, citations=cites, passages=tuple(passages),
                      features=draft.features)

    def _see_also(self, passages: list[Passage], n: int = 3) -> tuple[Citation, ...]:
        out: list[Citation] = []
        for p in passages:
            if len(out) == n:
                break
            if all(c.doc_id != p.chunk.doc_id for c in out):
                out.append(citation(len(out) + 1, self.index.docs[p.chunk.doc_id], p.chunk.start, p.chunk.end))
        return tuple(out)

"""Question -> Answer: retrieval, the answer step, abstention and citations.

``QAService`` holds the loaded state (index, encoder, retriever, extractor) and is what
the CLI, the server and the eval harness call; it is safe to share between threads.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from qa.answering import NOT_FOUND, Draft, Extractor, citation, first_sentence
from qa.config import Settings
from qa.embedding import encode, warm_up
from qa.index import IndexData
from qa.questions import follow_up_type, last_question, resolve_follow_up
from qa.reader import Reader, cached_reader
from qa.reading import ReadingAnswerer, fitted_packing
from qa.retrieval import Mode, Retriever
from qa.text import detect_lang
from qa.types import Answer, Citation, Passage


class QAService:
    def __init__(self, index: IndexData, encoder: Any, settings: Settings, reader: Reader | None = None) -> None:
        """``reader``: a loaded reader to share (the eval harness reads several corpora with
        one); loaded from ``settings.reader_weights`` when the answerer is the reader."""
        self.index = index
        self.settings = settings
        if reader is None and settings.answerer == "reader":
            reader = cached_reader(settings.reader_weights, settings.reader_precision)
        self.reading = None if reader is None else ReadingAnswerer(index, reader, packing=fitted_packing(settings))
        self.extractor = Extractor(index, embed=lambda words: encode(encoder, words))
        # one store of word vectors: those of a question's words the index lacks are
        # encoded with the question (``encode_questions``) and read by both stages
        self.retriever = Retriever.from_settings(index, encoder, settings, self.extractor.vectors)
        # the server's questions waiting for a CPU slot, encoded together
        self.queue = EncodingQueue(self.encode_questions)
        # questions about the sources share most of their word pieces: the encoder's rows
        # of those are computed now, not during the first answers
        warm_up(encoder, [c.text for c in index.chunks])

    def encode_questions(self, asks: Sequence[tuple[str, Sequence[str]]]) -> list[np.ndarray]:
        """The vectors of questions (each with its history, for follow-ups), in one encoder
        call with those of their words the index has no vector for (which are remembered).
        A call costs ~2.5 ms for one question and ~1.1 ms a question for ten: the encoder
        streams its weights once a call."""
        queries = [resolve_follow_up(q.strip(), list(h)) for q, h in asks]
        missing = list(dict.fromkeys(w for query in queries for w in self.extractor.missing_words(query)))
        vecs = encode(self.retriever.encoder, [*queries, *missing])
        self.extractor.vectors.remember(missing, vecs[len(queries):])
        return list(vecs[:len(queries)])

    def ask(self, question: str, history: Sequence[str] = (), *, mode: Mode = "fused", answerer: str | None = None,
            threshold: float | None = None, qvec: np.ndarray | None = None) -> Answer:
        """Answer ``question`` (``history``: earlier questions, oldest first, for follow-ups);
        below ``threshold`` (default: Settings) it abstains in the question's language.
        ``qvec``: the question's vector from ``encode_questions`` when already encoded."""
        question = question.strip()
        lang = detect_lang(question)
        query = resolve_follow_up(question, list(history))
        passages: list[Passage] = []
        draft: Draft | None = None
        if question:
            if qvec is None:
                qvec = self.encode_questions([(question, history)])[0]
            passages = self.retriever.search(query, self.settings.answer_passages, mode, qvec=qvec if mode != "bm25" else None)
            kind = answerer or self.settings.answerer
            if kind == "first-sentence":
                draft = first_sentence(self.index, passages)
            elif kind == "reader":
                if self.reading is None:
                    raise ValueError("the reader is not loaded (answerer 'reader' needs it)")
                draft = self.reading(passages, question, qvec, earlier=last_question(history))
            else:
                draft = self.extractor(self.index, passages, question=question, query=query,
                                       qtype=follow_up_type(question, history), lang=lang, qvec=qvec,
                                       earlier=last_question(history))
        limit = self.settings.threshold(answerer) if threshold is None else threshold
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


class EncodingQueue:
    """Questions waiting for a CPU slot, encoded together by the first of them to get one.

    Under load a server process has several questions waiting while it answers one; the
    encoder costs ~2.5 ms for a question alone and ~1.1 ms a question for ten in one call
    (it streams its weights once a call), so the waiting ones are encoded in the same call
    and find their vectors ready when their turn comes. A question alone is encoded alone,
    at no extra cost. Written here because the batching libraries for model servers batch
    whole requests in a queue of their own, where this is only the first step of an answer
    that runs in the server's CPU slots.
    """

    def __init__(self, encode_many: Callable[[list[tuple[str, Sequence[str]]]], list[np.ndarray]],
                 max_batch: int = 16) -> None:
        self._encode_many = encode_many
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[str, Sequence[str]]] = {}  # not yet claimed by a batch, oldest first
        self._futures: dict[int, Future[np.ndarray]] = {}
        self._tickets = itertools.count()
        self.batches = self.encoded = 0  # for tests and the benchmark

    def add(self, question: str, history: Sequence[str] = ()) -> int:
        """Queue a question for encoding; the ticket is for ``take`` and ``drop``."""
        with self._lock:
            ticket = next(self._tickets)
            self._waiting[ticket] = (question, tuple(history))
            self._futures[ticket] = Future()
            return ticket

    def take(self, ticket: int) -> np.ndarray:
        """The question's vector: encoded already (or being encoded by another thread: then
        it waits for it), or now, with the oldest waiting questions."""
        with self._lock:
            future = self._futures.pop(ticket)
            batch: dict[int, tuple[tuple[str, Sequence[str]], Future[np.ndarray]]] = {}
            if ticket in self._waiting:
                batch[ticket] = (self._waiting.pop(ticket), future)
                while self._waiting and len(batch) < self.max_batch:
                    t = next(iter(self._waiting))
                    batch[t] = (self._waiting.pop(t), self._futures[t])
        if batch:
            try:
                vecs = self._encode_many([item for item, _f in batch.values()])
            except BaseException as e:
                for _item, f in batch.values():
                    f.set_exception(e)
                raise
            for (_item, f), vec in zip(batch.values(), vecs, strict=True):
                f.set_result(vec)
            with self._lock:
                self.batches += 1
                self.encoded += len(batch)
        return future.result()

    def drop(self, ticket: int) -> None:
        """Forget a question that will not be answered (its caller gave up)."""
        with self._lock:
            self._waiting.pop(ticket, None)
            self._futures.pop(ticket, None)

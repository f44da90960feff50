"""``POST /api/ask``: a question (with earlier turns for follow-ups) answered from the
sources with citations, or declined; every question is logged with its answer."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
import uuid
from typing import Any

import anyio.to_thread
from fastapi import APIRouter

from qa.answering import NOT_FOUND
from qa.api.deps import AppSettings, Cpu, Ready, on_cpu, question_or_422
from qa.api.schemas import AnswerOut, AskRequest, errors
from qa.types import Answer

log = logging.getLogger("qa.server")

router = APIRouter(tags=["api"])


def in_language(answer: Answer, lang: str) -> Answer:
    """The reply's messages in ``lang`` (the client fixed its interface language)."""
    if answer.lang == lang:
        return answer
    return dataclasses.replace(answer, lang=lang, message=NOT_FOUND[lang] if answer.abstained else answer.message)


@router.post("/api/ask", response_model=AnswerOut, responses=errors(408, 413, 422, 429, 503))
async def ask(body: AskRequest, loaded: Ready, settings: AppSettings, cpu: Cpu) -> dict[str, Any]:
    """Answer a question from the sources with citations, or decline in the reply's language."""
    service, store = loaded
    question = question_or_422(body.question, settings)
    history = [question_or_422(h if isinstance(h, str) else h.question, settings, f"history[{i}]")
               for i, h in enumerate(body.history)]

    ticket = service.queue.add(question, history)

    def work() -> tuple[Answer, float]:
        t0 = time.perf_counter()
        answer = service.ask(question, history, qvec=service.queue.take(ticket))
        latency_ms = (time.perf_counter() - t0) * 1000
        return (in_language(answer, body.lang) if body.lang != "auto" else answer), latency_ms

    try:
        answer, latency_ms = await on_cpu(cpu, work)
    finally:
        service.queue.drop(ticket)  # a question given up on is not encoded for nothing
    answer_id = uuid.uuid4().hex
    first = answer.citations[0] if answer.citations else None

    def log_question() -> None:
        try:
            store.log_question(answer_id=answer_id, question=question, lang=answer.lang, abstained=answer.abstained,
                               confidence=answer.confidence, latency_ms=latency_ms, answer=answer.answer,
                               short_answer=answer.short_answer, doc_id=first.doc_id if first else None)
        except sqlite3.Error:
            # The visitor still gets the answer; only its log row (and so feedback on it) is lost.
            log.exception("could not log the question")

    # Outside the CPU slot: a write waiting for the database lock (another worker
    # writing) must not keep a core's slot idle (a tenth of a worker's time under load)
    await anyio.to_thread.run_sync(log_question)
    return {**answer.to_json(), "answer_id": answer_id}

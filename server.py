"""The HTTP API and the chat widget: a thin FastAPI layer over ``qa/``.

``uvicorn server:app`` (or ``qa serve``) loads the encoder and the index once at startup,
building the index first when it is missing or stale, and serves:

- ``POST /api/ask``, ``GET /api/search``, ``GET /api/sources/{doc_id}``, ``POST /api/feedback``;
- ``GET /healthz`` (the process is up) and ``GET /readyz`` (the index is loaded);
- the chat widget (``/widget.js``, ``/widget.css``) and its demo page (``/``);
- the API docs at ``/docs`` and ``/redoc``, with their assets served locally (no CDN).

Every question asked is logged with its answer in the SQLite database of ``qa/store.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

import qa
from qa.answering import NOT_FOUND
from qa.config import Settings
from qa.embedding import default_threads
from qa.index import MissingIndexError, StaleIndexError, build_on_disk, open_index
from qa.pipeline import QAService
from qa.questions import QuestionError, validate_question
from qa.store import Store
from qa.types import Answer

log = logging.getLogger("qa.server")

WEB_DIR = Path(qa.__file__).resolve().parent / "web"
MAX_HISTORY_TURNS = 10
MAX_COMMENT_CHARS = 2000
# Generous caps that only stop abuse; the question's own limit (Settings.max_question_chars)
# is checked by validate_question with a clearer message.
MAX_TEXT_CHARS = 20_000
MAX_BODY_BYTES = 1 << 20
MAX_SEARCH_K = 50

# What the demo page (and so the widget, which needs nothing more) may load: only this origin.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# JSON is never a document to render or frame.
API_CSP = "default-src 'none'; frame-ancestors 'none'"


# ------------------------------------------------------------------ request and response models

_COMMENT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _plain_comment(value: str) -> str:
    if _COMMENT_CONTROL.search(value):
        raise ValueError("contains control characters")
    return value


class Turn(BaseModel):
    """An earlier turn of the conversation; only its question is used (for follow-ups)."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(max_length=MAX_TEXT_CHARS)
    answer: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(max_length=MAX_TEXT_CHARS, examples=["When was Technopolis Moscow founded?"])
    lang: Literal["en", "ru", "auto"] = Field(
        default="auto", description="language of the reply's messages; auto: the question's language")
    history: list[Turn | str] = Field(
        default_factory=list, max_length=MAX_HISTORY_TURNS,
        description="earlier turns, oldest first: {question, answer?} objects or plain question strings")


class CitationOut(BaseModel):
    n: int
    doc_id: str
    title: str
    url: str | None
    lang: str
    start: int = Field(description="character offset into the source text (GET /api/sources/{doc_id})")
    end: int
    quote: str = Field(description="== source text[start:end]")


class AnswerOut(BaseModel):
    answer_id: str = Field(description="pass to POST /api/feedback")
    question: str
    lang: Literal["en", "ru"]
    abstained: bool
    answer: str | None
    short_answer: str | None
    confidence: float
    citations: list[CitationOut]
    message: str | None = Field(description="the decline, in the reply's language, when abstained")
    see_also: list[CitationOut]


class PassageOut(BaseModel):
    doc_id: str
    chunk_id: str
    title: str
    url: str | None
    lang: str
    start: int
    end: int
    text: str
    score: float


class SearchOut(BaseModel):
    query: str
    results: list[PassageOut]


class SourceOut(BaseModel):
    doc_id: str
    title: str
    url: str | None
    lang: str
    date: str | None
    text: str = Field(description="the source file's text exactly as stored; citation offsets index into it")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer_id: str = Field(min_length=1, max_length=64)
    rating: Literal["up", "down"]
    comment: Annotated[str, AfterValidator(_plain_comment)] | None = Field(default=None, max_length=MAX_COMMENT_CHARS)


class FeedbackOut(BaseModel):
    answer_id: str
    rating: Literal["up", "down"]
    stored: bool


# ------------------------------------------------------------------ loading


def load_service(settings: Settings, progress: Callable[[str], None] | None = None) -> QAService:
    """Load the encoder and the index; build the index first when it is missing or stale."""
    from qa.embedding import load_encoder

    say = progress or log.warning
    encoder = load_encoder(settings.embedding_model, settings.embedding_threads)
    try:
        index = open_index(settings)
    except (MissingIndexError, StaleIndexError) as e:
        say(f"{e} -> building it now")
        build_on_disk(settings, encoder=encoder, progress=progress)
        index = open_index(settings)
    return QAService(index, encoder, settings)


def _in_language(answer: Answer, lang: str) -> Answer:
    """The reply's messages in ``lang`` (the client fixed its interface language)."""
    if answer.lang == lang:
        return answer
    return dataclasses.replace(answer, lang=lang, message=NOT_FOUND[lang] if answer.abstained else answer.message)


def _error_text(err: dict[str, Any]) -> str:
    if err.get("type") == "json_invalid":
        return f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'cannot be parsed')})"
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
    msg = str(err.get("msg", "invalid value"))
    return f"{'.'.join(loc)}: {msg}" if loc else msg


def _ready(request: Request) -> tuple[QAService, Store]:
    state = request.app.state
    if state.service is None or state.store is None:
        raise HTTPException(503, "the service is starting: the index is not loaded yet", headers={"Retry-After": "5"})
    return state.service, state.store


# The loaded service and question log, or 503 while starting.
Ready = Annotated[tuple[QAService, Store], Depends(_ready)]


# ------------------------------------------------------------------ the app


def create_app(settings: Settings | None = None, service: QAService | None = None, store: Store | None = None) -> FastAPI:
    """The app. Without ``service`` the encoder and index are loaded at startup; without
    ``store`` the database at ``settings.db_path`` is opened at startup."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        own_store = state.store is None
        if own_store:
            state.store = Store(settings.db_path)
        try:
            if state.service is None:
                state.service = await anyio.to_thread.run_sync(load_service, settings)
            log.info("ready: %d documents, %d chunks", len(state.service.index.docs), len(state.service.index.chunks))
            yield
        finally:
            if own_store:
                state.store.close()
                state.store = None

    app = FastAPIOffline(
        title="Technopolis QA",
        version="0.1.0",
        description="Bilingual (EN + RU) extractive answers with exact citations over the bundled sources. "
                    "Answers are verbatim text from a source; every citation's `quote` equals "
                    "`GET /api/sources/{doc_id}` text[start:end].",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.store = store
    # CPU-bound asks and searches: as many at a time as there are cores, the rest wait.
    limiter = anyio.CapacityLimiter(default_threads())

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], allow_credentials=False, max_age=600)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            response: Response = JSONResponse({"detail": f"the request body is larger than {MAX_BODY_BYTES} bytes"},
                                              status_code=413)
        else:
            response = await call_next(request)
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path.startswith("/api/"):
            headers.setdefault("Content-Security-Policy", API_CSP)
            headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the whole input back; a message and where is enough.
        errors = [{"loc": list(e.get("loc", ())), "msg": _error_text(e), "type": e.get("type", "")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    def question_or_422(text: str, what: str = "question") -> str:
        try:
            return validate_question(text, settings.max_question_chars)
        except QuestionError as e:
            raise HTTPException(422, f"{what}: {e}" if what != "question" else str(e)) from e

    # -------------------------------------------------------------- API

    @app.post("/api/ask", response_model=AnswerOut, tags=["api"],
              responses={422: {"description": "invalid question"}, 503: {"description": "still loading"}})
    async def ask(body: AskRequest, loaded: Ready) -> dict[str, Any]:
        """Answer a question from the sources with citations, or decline in the reply's language."""
        service, store = loaded
        question = question_or_422(body.question)
        history = [question_or_422(h if isinstance(h, str) else h.question, f"history[{i}]")
                   for i, h in enumerate(body.history)]

        def work() -> dict[str, Any]:
            t0 = time.perf_counter()
            answer = service.ask(question, history)
            latency_ms = (time.perf_counter() - t0) * 1000
            if body.lang != "auto":
                answer = _in_language(answer, body.lang)
            answer_id = uuid.uuid4().hex
            first = answer.citations[0] if answer.citations else None
            try:
                store.log_question(answer_id=answer_id, question=question, lang=answer.lang, abstained=answer.abstained,
                                   confidence=answer.confidence, latency_ms=latency_ms, answer=answer.answer,
                                   short_answer=answer.short_answer, doc_id=first.doc_id if first else None)
            except sqlite3.Error:
                # The visitor still gets the answer; only its log row (and so feedback on it) is lost.
                log.exception("could not log the question")
            return {**answer.to_json(), "answer_id": answer_id}

        return await anyio.to_thread.run_sync(work, limiter=limiter)

    @app.get("/api/search", response_model=SearchOut, tags=["api"])
    async def search(loaded: Ready,
                     q: Annotated[str, Query(max_length=MAX_TEXT_CHARS, description="the query, EN or RU")],
                     k: Annotated[int, Query(ge=1, le=MAX_SEARCH_K, description="number of passages")] = 5,
                     ) -> dict[str, Any]:
        """Ranked passages (fused BM25 + dense retrieval) for a query."""
        service, _store = loaded
        query = question_or_422(q, "q")
        passages = await anyio.to_thread.run_sync(partial(service.retriever.search, query, k, "fused"), limiter=limiter)
        docs = service.index.docs
        results = [{"doc_id": p.chunk.doc_id, "chunk_id": p.chunk.chunk_id, "title": docs[p.chunk.doc_id].title,
                    "url": docs[p.chunk.doc_id].url, "lang": p.chunk.lang, "start": p.chunk.start, "end": p.chunk.end,
                    "text": p.chunk.text, "score": round(p.score, 6)} for p in passages]
        return {"query": query, "results": results}

    @app.get("/api/sources/{doc_id}", response_model=SourceOut, tags=["api"],
             responses={404: {"description": "no source with this id"}})
    async def source(loaded: Ready, doc_id: str) -> dict[str, Any]:
        """A source's full text exactly as stored, which citation offsets index into."""
        service, _store = loaded
        # Only ids of the loaded index are looked up: no path is ever built from the request.
        doc = service.index.docs.get(doc_id)
        if doc is None:
            raise HTTPException(404, "no source with this id")
        return {"doc_id": doc.doc_id, "title": doc.title, "url": doc.url, "lang": doc.lang, "date": doc.date,
                "text": doc.text}

    @app.post("/api/feedback", response_model=FeedbackOut, tags=["api"],
              responses={404: {"description": "unknown answer_id"}})
    async def feedback(body: FeedbackRequest, loaded: Ready) -> dict[str, Any]:
        """Rate an answer (a later rating of the same answer replaces the earlier one)."""
        _service, store = loaded
        comment = body.comment.strip() if body.comment else None
        stored = await anyio.to_thread.run_sync(store.add_feedback, body.answer_id, body.rating, comment or None)
        if not stored:
            raise HTTPException(404, "unknown answer_id")
        return {"answer_id": body.answer_id, "rating": body.rating, "stored": True}

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready"}})
    async def readyz(request: Request) -> JSONResponse:
        """200 once the index is loaded and the database open, 503 before."""
        state = request.app.state
        if state.service is None or state.store is None:
            return JSONResponse({"status": "starting"}, status_code=503, headers={"Retry-After": "5"})
        index = state.service.index
        return JSONResponse({"status": "ready", "docs": len(index.docs), "chunks": len(index.chunks)})

    # -------------------------------------------------------------- widget and demo page

    def asset(name: str, media_type: str, **headers: str) -> FileResponse:
        return FileResponse(WEB_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache", **headers})

    @app.get("/", include_in_schema=False)
    async def demo_page() -> FileResponse:
        return asset("index.html", "text/html; charset=utf-8", **{"Content-Security-Policy": PAGE_CSP})

    @app.get("/widget.js", include_in_schema=False)
    async def widget_js() -> FileResponse:
        return asset("widget.js", "text/javascript; charset=utf-8")

    @app.get("/widget.css", include_in_schema=False)
    async def widget_css() -> FileResponse:
        return asset("widget.css", "text/css; charset=utf-8")

    return app


app = create_app()

"""The HTTP API and the chat widget: a thin FastAPI layer over ``qa/``.

``uvicorn server:app`` (or ``qa serve``) loads the encoder and the index once at startup,
building the index first when it is missing or stale, and serves:

- ``POST /api/ask``, ``GET /api/search``, ``GET /api/sources/{doc_id}``, ``POST /api/feedback``;
- ``POST``/``GET /api/admin/reindex`` (with ``QA_ADMIN_TOKEN``): rebuild the index while serving;
- ``POST``/``GET /api/admin/sources``, ``DELETE /api/admin/sources/{doc_id}`` (the same token):
  add a document (HTML, PDF, DOCX, Markdown, text), list and remove sources (qa/sources_api.py);
- ``GET /healthz`` (the process is up) and ``GET /readyz`` (the index is loaded);
- the chat widget (``/widget.js``, ``/widget.css``) and its demo page (``/``);
- the API docs at ``/docs`` and ``/redoc``, with their assets served locally (no CDN).

Every question asked is logged with its answer in the SQLite database of ``qa/store.py``.
A public widget gets junk, floods and attacks: every ``/api/`` request passes a per-client
rate limit and a body size limit, asks and searches run within a deadline, client mistakes
get a 4xx with a message, and the OpenAPI schema describes every error response.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import math
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import qa
from qa.answering import NOT_FOUND
from qa.config import Settings
from qa.embedding import default_threads
from qa.index import BuildInProgress, IndexUnusable, MissingIndexError, StaleIndexError, build_on_disk, open_index
from qa.limits import CpuRunner, Overloaded, RateLimiter
from qa.pipeline import QAService
from qa.questions import QuestionError, validate_question
from qa.reindex import Reindexer
from qa.sources import SourceError
from qa.sources_api import UPLOAD_PATH, sources_router
from qa.store import Store
from qa.types import Answer

log = logging.getLogger("qa.server")

WEB_DIR = Path(qa.__file__).resolve().parent / "web"
MAX_HISTORY_TURNS = 10
MAX_COMMENT_CHARS = 2000
# A generous cap that only stops abuse (earlier answers sent back as history); questions
# have their own limit, Settings.max_question_chars.
MAX_TEXT_CHARS = 20_000
MAX_SEARCH_K = 50
# What a multipart upload adds to the file's bytes (boundaries, part headers, form fields).
UPLOAD_OVERHEAD = 64 << 10
# Methods whose body is read (and so limited in size).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# What the demo page (and so the widget, which needs nothing more) may load: only this origin.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# JSON is never a document to render or frame.
API_CSP = "default-src 'none'; frame-ancestors 'none'"


# ------------------------------------------------------------------ request and response models

_COMMENT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# What qa.questions.validate_question accepts, as a JSON-schema pattern: no control
# characters (tab and newlines allowed) and at least one character that is not whitespace
# (Python's str.isspace, listed). The limit on length is Settings.max_question_chars, put
# into the schema per app (``_openapi``). tests/test_fuzz.py checks the two agree.
_NOT_CONTROL = r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]"
_NOT_SPACE = r"[^\u0000-\u0020\u007f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
QUESTION_PATTERN = f"^{_NOT_CONTROL}*{_NOT_SPACE}{_NOT_CONTROL}*$"
COMMENT_PATTERN = f"^{_NOT_CONTROL}*$"


def _plain_comment(value: str) -> str:
    if _COMMENT_CONTROL.search(value):
        raise ValueError("contains control characters")
    return value


# A question (or search query): checked by validate_question in the handler, which says
# what is wrong in words; the schema states the same rule. The hard cap also makes pydantic
# refuse unpaired surrogates (not text; the encoder cannot take them).
QuestionText = Annotated[str, Field(max_length=MAX_TEXT_CHARS, json_schema_extra={"pattern": QUESTION_PATTERN})]


class Turn(BaseModel):
    """An earlier turn of the conversation; only its question is used (for follow-ups)."""

    model_config = ConfigDict(extra="forbid")
    question: QuestionText
    answer: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: QuestionText = Field(examples=["When was Technopolis Moscow founded?"])
    lang: Literal["en", "ru", "auto"] = Field(
        default="auto", description="language of the reply's messages; auto: the question's language")
    history: list[Turn | QuestionText] = Field(
        default_factory=list, max_length=MAX_HISTORY_TURNS,
        description="earlier turns, oldest first: {question, answer?} objects or plain question strings")


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="where: body, question, history, 0, …")
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every 4xx and 503: what went wrong, in words (a list for malformed requests)."""

    detail: str | list[ErrorItem]


class ReadyOut(BaseModel):
    status: Literal["ready", "starting", "failed"]
    docs: int | None = None
    chunks: int | None = None
    detail: str | None = Field(default=None, description="why not ready, when loading the index failed")


class ServingOut(BaseModel):
    docs: int
    chunks: int
    built_at: str | None


class ReindexOut(BaseModel):
    state: Literal["idle", "running", "succeeded", "failed"]
    started_at: str | None
    finished_at: str | None
    seconds: float | None
    docs: int | None = Field(description="documents in the index this rebuild made")
    chunks: int | None
    error: str | None = Field(description="why the last rebuild failed (the previous index kept serving)")
    serving: ServingOut | None = Field(description="the index answering now")


class CitationOut(BaseModel):
    n: int
    doc_id: str
    title: str
    url: str | None
    lang: str
    date: str | None = Field(default=None, description="the source's publication date (ISO), when known")
    page: int | None = Field(default=None, description="the page the quote starts on (sources imported from a PDF)")
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
    comment: Annotated[str, AfterValidator(_plain_comment), Field(json_schema_extra={"pattern": COMMENT_PATTERN})] | None = \
        Field(default=None, max_length=MAX_COMMENT_CHARS)


class FeedbackOut(BaseModel):
    answer_id: str
    rating: Literal["up", "down"]
    stored: bool


# ------------------------------------------------------------------ loading


def _limit_threads(threads: int) -> None:
    """Every thread pool of the process (BLAS, OpenMP, FAISS) to ``threads``.

    The server already runs one question a core (qa/limits.py CpuRunner), and with
    ``--workers`` one process a core. Left at their defaults, OpenBLAS and OpenMP start a
    thread a core in every process for the small products of retrieval and answering,
    and their idle threads spin: with 2 workers on 2 cores a lone question took 60 ms
    instead of 14 (bench/run.py, 1 client)."""
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    faiss.omp_set_num_threads(threads)
    torch.set_num_threads(threads)  # the reader's


def load_service(settings: Settings, progress: Callable[[str], None] | None = None) -> QAService:
    """Load the encoder and the index; build the index first when it is missing or stale."""
    from qa.embedding import load_encoder

    say = progress or log.warning
    _limit_threads(settings.server_embedding_threads)
    encoder = load_encoder(settings.embedding_model, settings.server_embedding_threads)
    try:
        index = open_index(settings)
    except (MissingIndexError, StaleIndexError) as e:
        say(f"{e} -> building it now")
        build_on_disk(settings, encoder=encoder, progress=progress, parse_apart=True)
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


async def _ready(request: Request) -> tuple[QAService, Store]:
    # async: FastAPI runs a plain function dependency in a worker thread, a thread hop for
    # every request to read two attributes
    state = request.app.state
    if state.service is None or state.store is None:
        detail = state.load_error or "the service is starting: the index is not loaded yet"
        raise HTTPException(503, detail, headers={"Retry-After": "5"})
    return state.service, state.store


# The loaded service and question log, or 503 while starting. Each request keeps the
# service it started with, so a reindex swapping in a new one never changes it midway.
Ready = Annotated[tuple[QAService, Store], Depends(_ready)]


# ------------------------------------------------------------------ limits and headers


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "string"}}}
_ERRORS: dict[int, dict[str, Any]] = {
    401: {"description": "no valid admin token (Authorization: Bearer QA_ADMIN_TOKEN)"},
    404: {"description": "not found"},
    408: {"description": "the request body did not arrive in time (Settings.request_timeout_s)"},
    409: {"description": "a reindex is already running, or a source with this id exists"},
    413: {"description": "the request body is too large (Settings.max_body_bytes; an upload: max_upload_bytes)"},
    415: {"description": "the file's type is not one that can be added"},
    422: {"description": "invalid request: what is wrong, in words"},
    429: {"description": "too many requests from this client (Settings.rate_limit_per_minute)", "headers": _RETRY_AFTER},
    503: {"description": "not ready yet, or no answer in time (Settings.request_timeout_s)", "headers": _RETRY_AFTER},
}


# The admin token, when given (checked by the admin endpoints themselves: 404 while no
# token is configured, 401 for a wrong one).
BEARER = HTTPBearer(auto_error=False, description="the server's QA_ADMIN_TOKEN")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the ErrorOut body."""
    return {code: {"model": ErrorOut, **_ERRORS[code]} for code in codes}


class Guard:
    """Outermost checks of every request, before any body is read or parsed: the per-client
    rate limit on ``/api/``, the body size limit (declared or streamed), and the security
    headers on every response (on errors too). Starlette's RequestBodyLimitMiddleware would
    do the size limit, but answers in plain text; every error here is JSON with a message."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter, max_body: int, body_timeout_s: float = 0.0,
                 body_rules: Callable[[Scope], tuple[int, float]] | None = None) -> None:
        self.app = app
        self.limiter = limiter
        self.max_body = max_body
        self.body_timeout_s = body_timeout_s
        # (size limit, seconds to arrive) of a request's body: larger and slower for some
        # (an admin's upload), else max_body and body_timeout_s
        self.body_rules = body_rules or (lambda _scope: (max_body, body_timeout_s))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if api:
                    headers.setdefault("Content-Security-Policy", API_CSP)
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        if api and self.limiter.enabled:
            client = scope.get("client")
            wait = self.limiter.hit(client[0] if client else "unknown")
            if wait:
                retry = RateLimiter.retry_after(wait)
                await JSONResponse({"detail": f"too many requests: try again in {retry} s"}, status_code=429,
                                   headers={"Retry-After": retry})(scope, receive, send_with_headers)
                return
        if scope["method"] in BODY_METHODS:
            body: bytes | None = None
            # A client trickling its body in holds a connection: it gets the same deadline
            # as an answer.
            limit, timeout = self.body_rules(scope)
            with anyio.move_on_after(timeout or math.inf) as reading:
                body = await self._read_body(scope, receive, limit)
            if reading.cancelled_caught:
                await JSONResponse({"detail": f"the request body did not arrive within {timeout:g} s"},
                                   status_code=408)(scope, receive, send_with_headers)
                return
            if body is None:
                await JSONResponse({"detail": f"the request body is larger than {limit} bytes"},
                                   status_code=413)(scope, receive, send_with_headers)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send_with_headers)

    async def _read_body(self, scope: Scope, receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None when it is (or says it will be) over the limit."""
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then waits as before."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _flat_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, those of included routers (qa/sources_api.py) too: FastAPI keeps an
    included router as one entry that holds it (``original_router``)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        yield from _flat_routes(inner.routes) if inner is not None else (r,)


def _limit_questions(node: Any, max_chars: int) -> None:
    """Every question-text schema gets this app's length limit."""
    if isinstance(node, dict):
        if node.get("pattern") == QUESTION_PATTERN:
            node["maxLength"] = min(max_chars, MAX_TEXT_CHARS)
        for v in node.values():
            _limit_questions(v, max_chars)
    elif isinstance(node, list):
        for v in node:
            _limit_questions(v, max_chars)


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
                try:
                    state.service = await anyio.to_thread.run_sync(load_service, settings)
                except (IndexUnusable, SourceError) as e:
                    # Never serve a damaged index: stay up, not ready, and say why (readyz,
                    # and 503 on the API) until a reindex or `qa build` and a restart fix it.
                    state.load_error = f"the index cannot be used: {e}"
                    log.error("not ready: %s", state.load_error)
            if state.service is not None:
                log.info("ready: %d documents, %d chunks", len(state.service.index.docs),
                         len(state.service.index.chunks))
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
                    "`GET /api/sources/{doc_id}` text[start:end]. Every error is JSON `{\"detail\": …}`; "
                    "`/api/` requests are rate-limited per client (429 with Retry-After).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.store = store
    app.state.load_error = None
    # CPU-bound asks and searches: as many at a time as there are cores, the rest wait,
    # each within the request deadline.
    cpu = CpuRunner(settings.cpu_slots or default_threads(), settings.request_timeout_s)

    def publish(new: QAService) -> None:
        # One attribute assignment: requests already running keep the service they hold.
        app.state.service = new
        app.state.load_error = None

    def encoder() -> Any:
        if app.state.service is not None:
            return app.state.service.retriever.encoder
        from qa.embedding import load_encoder

        return load_encoder(settings.embedding_model, settings.server_embedding_threads)

    reindexer = Reindexer(settings, encoder, publish)
    app.state.reindexer = reindexer

    def body_rules(scope: Scope) -> tuple[int, float]:
        # An upload may be as large as a document and take as long to arrive as a slow
        # link needs, but only with the admin token: anyone else's body is held to the
        # usual limits and refused before it is read whole.
        if scope["method"] == "POST" and scope["path"] == UPLOAD_PATH and settings.admin_token:
            scheme, _, given = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(given, settings.admin_token.get_secret_value().encode()):
                return (max(settings.max_body_bytes, settings.max_upload_bytes + UPLOAD_OVERHEAD),
                        max(settings.request_timeout_s, settings.upload_timeout_s))
        return settings.max_body_bytes, settings.request_timeout_s

    # Added first, so inside CORS: its 413 and 429 answers carry the CORS headers too, and a
    # widget on another site can read them (and Retry-After).
    app.add_middleware(Guard, limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
                       max_body=settings.max_body_bytes, body_timeout_s=settings.request_timeout_s,
                       body_rules=body_rules)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], expose_headers=["Retry-After"], allow_credentials=False,
                           max_age=600)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the whole input back; a message and where is enough.
        errors = [{"loc": list(e.get("loc", ())), "msg": _error_text(e), "type": e.get("type", "")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's "There was an error parsing the body" (this app raises no 400 itself):
            # JSON that is not UTF-8, or nested deeper than the parser goes.
            why = {UnicodeDecodeError: "not UTF-8 text", RecursionError: "nested too deeply"}.get(
                type(exc.__cause__), type(exc.__cause__).__name__)
            return JSONResponse({"detail": [{"loc": ["body"], "msg": f"the body is not valid JSON ({why})",
                                             "type": "json_invalid"}]}, status_code=422)
        if exc.status_code == 405:
            # Starlette names only the first route's methods; a path with a route per method
            # (GET and POST /api/admin/reindex) allows all of them.
            allowed = {m for r in _flat_routes(app.router.routes) if isinstance(r, Route)
                       and r.matches(request.scope)[0] == Match.PARTIAL for m in (r.methods or ())}
            return JSONResponse({"detail": "Method Not Allowed"}, status_code=405,
                                headers={"Allow": ", ".join(sorted(allowed))})
        return await http_exception_handler(request, exc)

    def question_or_422(text: str, what: str = "question") -> str:
        try:
            # The length as sent: what the schema's maxLength says.
            if len(text) > settings.max_question_chars:
                raise QuestionError(f"the question is too long ({len(text)} characters, at most "
                                    f"{settings.max_question_chars})")
            return validate_question(text, settings.max_question_chars)
        except QuestionError as e:
            raise HTTPException(422, f"{what}: {e}" if what != "question" else str(e)) from e

    async def on_cpu(fn: Callable[[], Any]) -> Any:
        try:
            return await cpu.run(fn)
        except Overloaded as e:
            raise HTTPException(503, f"the server is too busy to answer in time ({e}); try again shortly",
                                headers={"Retry-After": "5"}) from e

    # -------------------------------------------------------------- API

    @app.post("/api/ask", response_model=AnswerOut, tags=["api"], responses=_errors(408, 413, 422, 429, 503))
    async def ask(body: AskRequest, loaded: Ready) -> dict[str, Any]:
        """Answer a question from the sources with citations, or decline in the reply's language."""
        service, store = loaded
        question = question_or_422(body.question)
        history = [question_or_422(h if isinstance(h, str) else h.question, f"history[{i}]")
                   for i, h in enumerate(body.history)]

        ticket = service.queue.add(question, history)

        def work() -> tuple[Answer, float]:
            t0 = time.perf_counter()
            answer = service.ask(question, history, qvec=service.queue.take(ticket))
            latency_ms = (time.perf_counter() - t0) * 1000
            return (_in_language(answer, body.lang) if body.lang != "auto" else answer), latency_ms

        try:
            answer, latency_ms = await on_cpu(work)
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

    @app.get("/api/search", response_model=SearchOut, tags=["api"], responses=_errors(422, 429, 503))
    async def search(loaded: Ready,
                     q: Annotated[str, Query(max_length=MAX_TEXT_CHARS, description="the query, EN or RU",
                                             json_schema_extra={"pattern": QUESTION_PATTERN})],
                     k: Annotated[int, Query(ge=1, le=MAX_SEARCH_K, description="number of passages")] = 5,
                     ) -> dict[str, Any]:
        """Ranked passages (fused BM25 + dense retrieval) for a query."""
        service, _store = loaded
        query = question_or_422(q, "q")
        passages = await on_cpu(partial(service.retriever.search, query, k, "fused"))
        docs = service.index.docs
        results = [{"doc_id": p.chunk.doc_id, "chunk_id": p.chunk.chunk_id, "title": docs[p.chunk.doc_id].title,
                    "url": docs[p.chunk.doc_id].url, "lang": p.chunk.lang, "start": p.chunk.start, "end": p.chunk.end,
                    "text": p.chunk.text, "score": round(p.score, 6)} for p in passages]
        return {"query": query, "results": results}

    @app.get("/api/sources/{doc_id}", response_model=SourceOut, tags=["api"], responses=_errors(404, 429, 503))
    async def source(loaded: Ready, doc_id: str) -> dict[str, Any]:
        """A source's full text exactly as stored, which citation offsets index into."""
        service, _store = loaded
        # Only ids of the loaded index are looked up: no path is ever built from the request.
        doc = service.index.docs.get(doc_id)
        if doc is None:
            raise HTTPException(404, "no source with this id")
        return {"doc_id": doc.doc_id, "title": doc.title, "url": doc.url, "lang": doc.lang, "date": doc.date,
                "text": doc.text}

    @app.post("/api/feedback", response_model=FeedbackOut, tags=["api"], responses=_errors(404, 408, 413, 422, 429, 503))
    async def feedback(body: FeedbackRequest, loaded: Ready) -> dict[str, Any]:
        """Rate an answer (a later rating of the same answer replaces the earlier one)."""
        _service, store = loaded
        comment = body.comment.strip() if body.comment else None
        stored = await anyio.to_thread.run_sync(store.add_feedback, body.answer_id, body.rating, comment or None)
        if not stored:
            raise HTTPException(404, "unknown answer_id")
        return {"answer_id": body.answer_id, "rating": body.rating, "stored": True}

    # -------------------------------------------------------------- admin

    def admin(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        if not token:  # no token configured: the endpoint does not exist
            raise HTTPException(404, "Not Found")
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "a valid admin token is required (Authorization: Bearer …)",
                                headers={"WWW-Authenticate": "Bearer"})

    def reindex_status() -> dict[str, Any]:
        current = app.state.service
        serving = None if current is None else {
            "docs": len(current.index.docs), "chunks": len(current.index.chunks),
            "built_at": current.index.manifest.get("built_at")}
        return {**reindexer.status().to_json(), "serving": serving}

    @app.post("/api/admin/reindex", response_model=ReindexOut, status_code=202, tags=["admin"],
              dependencies=[Depends(admin)], responses=_errors(401, 404, 408, 409, 413, 429))
    async def start_reindex() -> dict[str, Any]:
        """Rebuild the index from the sources in the background and swap it in when it is
        loaded; questions keep being answered by the current index meanwhile."""
        try:
            reindexer.start()
        except BuildInProgress as e:
            raise HTTPException(409, f"a reindex is already running ({e})") from e
        return reindex_status()

    @app.get("/api/admin/reindex", response_model=ReindexOut, tags=["admin"], dependencies=[Depends(admin)],
             responses=_errors(401, 404, 429))
    async def get_reindex() -> dict[str, Any]:
        """The last (or running) reindex and the index answering now."""
        return reindex_status()

    app.include_router(sources_router(settings, admin=admin, reindexer=reindexer, reindex_status=reindex_status,
                                      reindex_model=ReindexOut, errors=_errors))

    # -------------------------------------------------------------- ops

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=ReadyOut, response_model_exclude_none=True,
             responses={503: {"model": ReadyOut, "description": "not ready: starting, or the index failed to load",
                              "headers": _RETRY_AFTER}})
    async def readyz(request: Request) -> JSONResponse:
        """200 once the index is loaded and the database open, 503 before (with the reason
        when loading failed)."""
        state = request.app.state
        if state.service is None or state.store is None:
            body = {"status": "failed", "detail": state.load_error} if state.load_error else {"status": "starting"}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
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

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            _limit_questions(spec, settings.max_question_chars)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()

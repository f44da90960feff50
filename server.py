"""The HTTP API and the chat widget: a thin FastAPI layer over ``qa/``.

``uvicorn server:app`` (or ``qa serve``) loads the encoder and the index once at startup,
building the index first when it is missing or stale, and serves:

- ``POST /api/ask``, ``GET /api/search``, ``GET /api/sources/{doc_id}``, ``POST /api/feedback``;
- ``POST``/``GET /api/admin/reindex`` (with ``QA_ADMIN_TOKEN``): rebuild the index while serving;
- ``POST``/``GET /api/admin/sources``, ``DELETE /api/admin/sources/{doc_id}`` (the same token):
  add a document (HTML, PDF, DOCX, Markdown, text), list and remove sources;
- ``GET /healthz`` (the process is up) and ``GET /readyz`` (the index is loaded);
- the chat widget (``/widget.js``, ``/widget.css``) and its demo page (``/``);
- the API docs at ``/docs`` and ``/redoc``, with their assets served locally (no CDN).

Every question asked is logged with its answer in the SQLite database of ``qa/store.py``.
A public widget gets junk, floods and attacks: every ``/api/`` request passes a per-client
rate limit and a body size limit, asks and searches run within a deadline, client mistakes
get a 4xx with a message, and the OpenAPI schema describes every error response.

This module only wires the app: settings, start-up loading (``lifespan``), the middlewares,
the exception handlers and the routers. The routes are in qa/api/ (one module a concern,
their dependencies injected from ``qa.api.deps``), the request guard in qa/limits.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa.api import admin, admin_sources, ask, errors, feedback, ops, pages, search, sources
from qa.api.pages import PAGE_CSP, WEB_DIR
from qa.api.schemas import MAX_TEXT_CHARS, QUESTION_PATTERN, limit_questions
from qa.config import Settings
from qa.embedding import default_threads
from qa.index import IndexUnusable, MissingIndexError, StaleIndexError, build_on_disk, open_index
from qa.limits import API_CSP, CpuRunner, Guard, RateLimiter
from qa.pipeline import QAService
from qa.reindex import Reindexer
from qa.sources import SourceError
from qa.store import Store

# Re-exported: the tests and tools name them from here.
__all__ = ["API_CSP", "MAX_TEXT_CHARS", "PAGE_CSP", "QUESTION_PATTERN", "WEB_DIR", "Guard", "app", "create_app",
           "load_service"]

log = logging.getLogger("qa.server")

# In the order their routes are matched and listed in the schema.
ROUTERS = (ask.router, search.router, sources.router, feedback.router, admin.router, admin_sources.router,
           ops.router, pages.router)


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


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the question log and load the service (unless given to ``create_app``)."""
    state = app.state
    settings: Settings = state.settings
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


def _reindexer(app: FastAPI, settings: Settings) -> Reindexer:
    """The app's reindexer: it encodes with the loaded service's encoder and swaps each new
    service in."""

    def publish(new: QAService) -> None:
        # One attribute assignment: requests already running keep the service they hold.
        app.state.service = new
        app.state.load_error = None

    def encoder() -> Any:
        if app.state.service is not None:
            return app.state.service.retriever.encoder
        from qa.embedding import load_encoder

        return load_encoder(settings.embedding_model, settings.server_embedding_threads)

    return Reindexer(settings, encoder, publish)


# ------------------------------------------------------------------ the app


def create_app(settings: Settings | None = None, service: QAService | None = None, store: Store | None = None) -> FastAPI:
    """The app. Without ``service`` the encoder and index are loaded at startup; without
    ``store`` the database at ``settings.db_path`` is opened at startup."""
    settings = settings or Settings()
    app = FastAPIOffline(
        title="Technopolis QA",
        version="0.1.0",
        description="Bilingual (EN + RU) extractive answers with exact citations over the bundled sources. "
                    "Answers are verbatim text from a source; every citation's `quote` equals "
                    "`GET /api/sources/{doc_id}` text[start:end]. Every error is JSON `{\"detail\": …}`; "
                    "`/api/` requests are rate-limited per client (429 with Retry-After).",
        lifespan=lifespan,
        exception_handlers={RequestValidationError: errors.invalid_request, StarletteHTTPException: errors.http_error},
    )
    # What the routes read through qa.api.deps.
    app.state.settings = settings
    app.state.service = service
    app.state.store = store
    app.state.load_error = None
    # CPU-bound asks and searches: as many at a time as there are cores, the rest wait,
    # each within the request deadline.
    app.state.cpu = CpuRunner(settings.cpu_slots or default_threads(), settings.request_timeout_s)
    app.state.reindexer = _reindexer(app, settings)

    # Added first, so inside CORS: its 413 and 429 answers carry the CORS headers too, and a
    # widget on another site can read them (and Retry-After).
    app.add_middleware(Guard, limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
                       max_body=settings.max_body_bytes, body_timeout_s=settings.request_timeout_s,
                       body_rules=admin_sources.body_rules(settings))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], expose_headers=["Retry-After"], allow_credentials=False,
                           max_age=600)

    for router in ROUTERS:
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            limit_questions(spec, settings.max_question_chars)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # replacing the method is FastAPI's way to extend the schema
    return app


app = create_app()

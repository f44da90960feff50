"""What the routers take from the app, as FastAPI dependencies.

Every route reads what it needs through these, never from a closure over ``create_app``:
the app puts its settings, service, question log, CPU runner and reindexer on
``app.state`` (server.py), and a test can set those on a bare app, or override any of these
functions with ``app.dependency_overrides``, to use one router alone (tests/test_routers.py).

They are ``async``: FastAPI runs a plain function dependency in a worker thread, a thread
hop for every request to read an attribute.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import State

from qa.config import Settings
from qa.limits import CpuRunner, Overloaded
from qa.pipeline import QAService
from qa.questions import QuestionError, validate_question
from qa.reindex import Reindexer
from qa.store import Store

T = TypeVar("T")


async def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(app_settings)]


async def ready(request: Request) -> tuple[QAService, Store]:
    """The loaded service and question log, or 503 while starting (or when the index could
    not be loaded, with the reason). Each request keeps the service it started with, so a
    reindex swapping in a new one never changes it midway."""
    state = request.app.state
    if state.service is None or state.store is None:
        detail = state.load_error or "the service is starting: the index is not loaded yet"
        raise HTTPException(503, detail, headers={"Retry-After": "5"})
    return state.service, state.store


Ready = Annotated[tuple[QAService, Store], Depends(ready)]


async def cpu_runner(request: Request) -> CpuRunner:
    runner: CpuRunner = request.app.state.cpu
    return runner


Cpu = Annotated[CpuRunner, Depends(cpu_runner)]


async def on_cpu(cpu: CpuRunner, fn: Callable[[], T]) -> T:
    """``fn`` in a CPU slot within the request deadline, or 503 when the server is too busy."""
    try:
        return await cpu.run(fn)
    except Overloaded as e:
        raise HTTPException(503, f"the server is too busy to answer in time ({e}); try again shortly",
                            headers={"Retry-After": "5"}) from e


def question_or_422(text: str, settings: Settings, what: str = "question") -> str:
    """The question (or query) as the pipeline takes it, or 422 saying what is wrong."""
    try:
        # The length as sent: what the schema's maxLength says.
        if len(text) > settings.max_question_chars:
            raise QuestionError(f"the question is too long ({len(text)} characters, at most "
                                f"{settings.max_question_chars})")
        return validate_question(text, settings.max_question_chars)
    except QuestionError as e:
        raise HTTPException(422, f"{what}: {e}" if what != "question" else str(e)) from e


# ------------------------------------------------------------------ admin

# The admin token, when given (checked by ``admin``: 404 while no token is configured,
# 401 for a wrong one).
BEARER = HTTPBearer(auto_error=False, description="the server's QA_ADMIN_TOKEN")


async def admin(request: Request,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
    settings: Settings = request.app.state.settings
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not token:  # no token configured: the endpoint does not exist
        raise HTTPException(404, "Not Found")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "a valid admin token is required (Authorization: Bearer …)",
                            headers={"WWW-Authenticate": "Bearer"})


async def reindexer(request: Request) -> Reindexer:
    found: Reindexer = request.app.state.reindexer
    return found


ReindexerDep = Annotated[Reindexer, Depends(reindexer)]


def reindex_status(state: State, reindexer: Reindexer) -> dict[str, Any]:
    """The last (or running) reindex and the index answering now (ReindexOut)."""
    current = state.service
    serving = None if current is None else {
        "docs": len(current.index.docs), "chunks": len(current.index.chunks),
        "built_at": current.index.manifest.get("built_at")}
    return {**reindexer.status().to_json(), "serving": serving}

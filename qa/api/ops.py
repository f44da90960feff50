"""``GET /healthz`` (the process is up) and ``GET /readyz`` (the index is loaded), for
load balancers and orchestrators: neither is rate-limited (they are not under ``/api/``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from qa.api.schemas import RETRY_AFTER, ReadyOut

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, response_model_exclude_none=True,
            responses={503: {"model": ReadyOut, "description": "not ready: starting, or the index failed to load",
                             "headers": RETRY_AFTER}})
async def readyz(request: Request) -> JSONResponse:
    """200 once the index is loaded and the database open, 503 before (with the reason
    when loading failed)."""
    state = request.app.state
    if state.service is None or state.store is None:
        body = {"status": "failed", "detail": state.load_error} if state.load_error else {"status": "starting"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    index = state.service.index
    return JSONResponse({"status": "ready", "docs": len(index.docs), "chunks": len(index.chunks)})

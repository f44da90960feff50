"""``POST``/``GET /api/admin/reindex`` (with the admin token): rebuild the index from the
sources in the background while the current one keeps answering (qa/reindex.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from qa.api.deps import ReindexerDep, admin, reindex_status
from qa.api.schemas import ReindexOut, errors
from qa.index import BuildInProgress

router = APIRouter(tags=["admin"], dependencies=[Depends(admin)])


@router.post("/api/admin/reindex", response_model=ReindexOut, status_code=202,
             responses=errors(401, 404, 408, 409, 413, 429))
async def start_reindex(request: Request, reindexer: ReindexerDep) -> dict[str, Any]:
    """Rebuild the index from the sources in the background and swap it in when it is
    loaded; questions keep being answered by the current index meanwhile."""
    try:
        reindexer.start()
    except BuildInProgress as e:
        raise HTTPException(409, f"a reindex is already running ({e})") from e
    return reindex_status(request.app.state, reindexer)


@router.get("/api/admin/reindex", response_model=ReindexOut, responses=errors(401, 404, 429))
async def get_reindex(request: Request, reindexer: ReindexerDep) -> dict[str, Any]:
    """The last (or running) reindex and the index answering now."""
    return reindex_status(request.app.state, reindexer)

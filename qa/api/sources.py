"""``GET /api/sources/{doc_id}``: a source's text exactly as stored, which every citation's
offsets index into (adding and removing sources: qa/api/admin_sources.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from qa.api.deps import Ready
from qa.api.schemas import SourceOut, errors

router = APIRouter(tags=["api"])


@router.get("/api/sources/{doc_id}", response_model=SourceOut, responses=errors(404, 429, 503))
async def source(loaded: Ready, doc_id: str) -> dict[str, Any]:
    """A source's full text exactly as stored, which citation offsets index into."""
    service, _store = loaded
    # Only ids of the loaded index are looked up: no path is ever built from the request.
    doc = service.index.docs.get(doc_id)
    if doc is None:
        raise HTTPException(404, "no source with this id")
    return {"doc_id": doc.doc_id, "title": doc.title, "url": doc.url, "lang": doc.lang, "date": doc.date,
            "text": doc.text}

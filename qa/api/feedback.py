"""``POST /api/feedback``: a visitor's rating of an answer, stored beside its question."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, HTTPException

from qa.api.deps import Ready
from qa.api.schemas import FeedbackOut, FeedbackRequest, errors

router = APIRouter(tags=["api"])


@router.post("/api/feedback", response_model=FeedbackOut, responses=errors(404, 408, 413, 422, 429, 503))
async def feedback(body: FeedbackRequest, loaded: Ready) -> dict[str, Any]:
    """Rate an answer (a later rating of the same answer replaces the earlier one)."""
    _service, store = loaded
    comment = body.comment.strip() if body.comment else None
    stored = await anyio.to_thread.run_sync(store.add_feedback, body.answer_id, body.rating, comment or None)
    if not stored:
        raise HTTPException(404, "unknown answer_id")
    return {"answer_id": body.answer_id, "rating": body.rating, "stored": True}

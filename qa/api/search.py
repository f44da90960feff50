"""``GET /api/search``: the ranked passages (fused BM25 + dense retrieval) for a query."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query

from qa.api.deps import AppSettings, Cpu, Ready, on_cpu, question_or_422
from qa.api.schemas import MAX_SEARCH_K, MAX_TEXT_CHARS, QUESTION_PATTERN, SearchOut, errors

router = APIRouter(tags=["api"])


@router.get("/api/search", response_model=SearchOut, responses=errors(422, 429, 503))
async def search(loaded: Ready, settings: AppSettings, cpu: Cpu,
                 q: Annotated[str, Query(max_length=MAX_TEXT_CHARS, description="the query, EN or RU",
                                         json_schema_extra={"pattern": QUESTION_PATTERN})],
                 k: Annotated[int, Query(ge=1, le=MAX_SEARCH_K, description="number of passages")] = 5,
                 ) -> dict[str, Any]:
    """Ranked passages (fused BM25 + dense retrieval) for a query."""
    service, _store = loaded
    query = question_or_422(q, settings, "q")
    passages = await on_cpu(cpu, partial(service.retriever.search, query, k, "fused"))
    docs = service.index.docs
    results = [{"doc_id": p.chunk.doc_id, "chunk_id": p.chunk.chunk_id, "title": docs[p.chunk.doc_id].title,
                "url": docs[p.chunk.doc_id].url, "lang": p.chunk.lang, "start": p.chunk.start, "end": p.chunk.end,
                "text": p.chunk.text, "score": round(p.score, 6)} for p in passages]
    return {"query": query, "results": results}

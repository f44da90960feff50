"""A router of qa/api/ used alone: mounted on a bare FastAPI app with a small fake service,
without server.py's app, its middlewares or a loaded index."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from qa.api import deps, search, sources
from qa.config import Settings
from qa.limits import CpuRunner
from qa.types import Chunk, Document, Passage

DOCS = {"park": Document(doc_id="park", text="Technopolis Moscow opened in 2012. It hosts firms.", lang="en",
                         title="The park", url="https://example.org/park")}
CHUNK = Chunk(chunk_id="park:0", doc_id="park", start=0, end=34, text=DOCS["park"].text[:34], lang="en")


class FakeRetriever:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []

    def search(self, query: str, k: int, mode: str) -> list[Passage]:
        self.calls.append((query, k, mode))
        return [Passage(chunk=CHUNK, score=0.12345678, bm25=0.5, dense=0.1)]


def bare_app(router: Any, service: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    # What server.create_app puts on app.state for qa.api.deps to read.
    app.state.settings = Settings(max_question_chars=50)
    app.state.service = service
    app.state.store = object()  # the search never writes the question log
    app.state.load_error = None
    app.state.cpu = CpuRunner(1, 5.0)
    return app


def test_the_search_router_alone_searches_validates_and_waits_for_the_service():
    retriever = FakeRetriever()
    app = bare_app(search.router, SimpleNamespace(retriever=retriever, index=SimpleNamespace(docs=DOCS)))
    with TestClient(app) as client:
        r = client.get("/api/search", params={"q": "  When did the park open?  ", "k": 3})
        assert r.status_code == 200
        # the query as validated (stripped), the fused ranking, the passage with its source's title
        assert retriever.calls == [("When did the park open?", 3, "fused")]
        assert r.json() == {"query": "When did the park open?", "results": [
            {"doc_id": "park", "chunk_id": "park:0", "title": "The park", "url": "https://example.org/park",
             "lang": "en", "start": 0, "end": 34, "text": "Technopolis Moscow opened in 2012.", "score": 0.123457}]}

        # the app's own settings decide the question's length limit
        too_long = client.get("/api/search", params={"q": "x" * 51})
        assert too_long.status_code == 422 and "at most 50" in too_long.json()["detail"]
        assert client.get("/api/search", params={"q": "ok", "k": 51}).status_code == 422
        assert len(retriever.calls) == 1

        # no service loaded yet: 503 with Retry-After, and nothing searched
        app.state.service = None
        busy = client.get("/api/search", params={"q": "When did the park open?"})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
        assert len(retriever.calls) == 1


def test_a_router_takes_its_service_from_an_overridden_dependency():
    app = FastAPI()
    app.include_router(sources.router)
    service = SimpleNamespace(index=SimpleNamespace(docs=DOCS))

    async def loaded() -> tuple[Any, Any]:
        return service, None

    app.dependency_overrides[deps.ready] = loaded
    with TestClient(app) as client:
        doc = client.get("/api/sources/park").json()
        assert doc["text"] == DOCS["park"].text and doc["title"] == "The park" and doc["date"] is None
        missing = client.get("/api/sources/nope")
        assert missing.status_code == 404 and missing.json() == {"detail": "no source with this id"}

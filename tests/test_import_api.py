"""The admin API of the sources: upload, list and delete over the tiny corpus, and the
reliability battery extended to uploads: bad files are 4xx with a message, never 5xx;
nothing half-written is left in the sources; the index keeps answering during and after."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

import server
from qa.config import Settings
from qa.index import build_lock, build_on_disk, open_index
from qa.pipeline import QAService
from qa.store import Store
from tests.documents import (
    MARKDOWN,
    NEWS_EN,
    encrypt_pdf,
    make_docx,
    make_pdf,
    make_scanned_pdf,
    make_zip_bomb,
)
from tests.test_import import PDF_PAGES

TOKEN = "upload-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ASK = "When was Technopark Alpha founded?"
OMEGA_2020 = "How many resident companies did Technopark Omega have in 2020?"


@pytest.fixture()
def built(settings: Settings, encoder: Any, tmp_path: Path) -> Settings:
    build_on_disk(settings, encoder=encoder)
    return settings.model_copy(update={"admin_token": SecretStr(TOKEN), "db_path": tmp_path / "qa.sqlite3",
                                       "rate_limit_per_minute": 0, "abstain_threshold": 0.0,
                                       "request_timeout_s": 120.0, "max_upload_bytes": 256 << 10})


@pytest.fixture()
def client(built: Settings, encoder: Any) -> Iterator[TestClient]:
    store = Store(built.db_path)
    yield TestClient(server.create_app(built, service=QAService(open_index(built), encoder, built), store=store))
    store.close()


def _done(client: TestClient) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while True:
        status = client.get("/api/admin/reindex", headers=AUTH).json()
        if status["state"] != "running":
            return status
        if time.monotonic() > deadline:
            pytest.fail("the reindex did not finish")
        time.sleep(0.05)


def _upload(client: TestClient, name: str, data: bytes, headers: dict[str, str] = AUTH, **form: str) -> Any:
    return client.post("/api/admin/sources", headers=headers, files={"file": (name, data)}, data=form)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_upload_ask_with_the_page_list_and_delete(client, built):
    r = _upload(client, "Omega Figures.pdf", make_pdf(PDF_PAGES, title="Omega in figures"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["source"]["doc_id"] == "omega-figures" and body["source"]["type"] == "pdf"
    assert body["source"]["pages"] == 3 and body["source"]["original"] == "originals/omega-figures.pdf"
    assert body["reindex"]["state"] in ("running", "succeeded")
    status = _done(client)
    assert status["state"] == "succeeded" and status["serving"]["docs"] == 4

    answer = client.post("/api/ask", json={"question": OMEGA_2020}).json()
    first = answer["citations"][0]
    assert first["doc_id"] == "omega-figures" and first["page"] == 2 and "45 resident companies" in answer["answer"]
    text = client.get("/api/sources/omega-figures").json()["text"]
    assert text[first["start"]:first["end"]] == first["quote"]
    # a source without a page map cites no page
    other = client.post("/api/ask", json={"question": ASK}).json()["citations"][0]
    assert other["doc_id"] == "alpha-technopark" and other["page"] is None

    r = _upload(client, "news.html", NEWS_EN.read_bytes(), doc_id="city-news", lang="en")
    assert r.status_code == 202 and r.json()["source"]["doc_id"] == "city-news"
    assert _done(client)["serving"]["docs"] == 5
    listed = {s["doc_id"]: s for s in client.get("/api/admin/sources", headers=AUTH).json()["sources"]}
    assert set(listed) == {"alpha-technopark", "gamma-cluster", "moscow-technoparks", "omega-figures", "city-news"}
    assert listed["city-news"]["type"] == "html" and listed["city-news"]["url"].startswith("https://city.example.org")
    assert listed["alpha-technopark"]["type"] == "txt" and listed["alpha-technopark"]["original"] is None

    r = client.delete("/api/admin/sources/omega-figures", headers=AUTH)
    assert r.status_code == 202 and r.json()["source"]["doc_id"] == "omega-figures"
    assert _done(client)["serving"]["docs"] == 4
    assert client.get("/api/sources/omega-figures").status_code == 404
    assert not list(built.sources_dir.glob("omega-figures*"))
    assert client.delete("/api/admin/sources/omega-figures", headers=AUTH).status_code == 404


def test_the_sources_api_needs_the_token(client, make_client_without_token):
    anonymous = make_client_without_token
    for c, headers, status in [(anonymous, AUTH, 404), (client, {}, 401), (client, {"Authorization": "Bearer no"}, 401)]:
        assert c.get("/api/admin/sources", headers=headers).status_code == status
        assert _upload(c, "a.md", MARKDOWN.encode(), headers=headers).status_code == status
        assert c.delete("/api/admin/sources/alpha-technopark", headers=headers).status_code == status
    # without the token the body limit is the usual one: a large upload is not even read
    r = _upload(client, "big.md", b"a" * (2 << 20), headers={})
    assert r.status_code == 413 and "larger than 1048576 bytes" in r.json()["detail"]


@pytest.fixture()
def make_client_without_token(built: Settings, encoder: Any) -> Iterator[TestClient]:
    s = built.model_copy(update={"admin_token": None})
    store = Store(s.db_path)
    yield TestClient(server.create_app(s, service=QAService(open_index(s), encoder, s), store=store))
    store.close()


BAD_UPLOADS = [
    ("virus.exe", b"MZ\x90\x00", {}, 415, "unsupported file type '.exe'"),
    ("README", b"some words here", {}, 415, "no file extension"),
    ("big.txt", b"word " * (60 << 10), {}, 413, "more than the limit"),
    ("damaged.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 20, {}, 422, "damaged"),
    ("locked.pdf", "locked", {}, 422, "encrypted"),
    ("scan.pdf", "scan", {}, 422, "no text layer"),
    ("bomb.docx", "bomb", {}, 422, "zip bomb"),
    ("not-zip.docx", b"this is plain text, not a zip" * 20, {}, 422, "not a zip"),
    ("binary.html", bytes(range(256)) * 40, {}, 422, "binary"),
    ("alpha-technopark.md", MARKDOWN.encode(), {}, 409, "already exists"),
    ("fine.md", MARKDOWN.encode(), {"doc_id": "../../etc/passwd"}, 422, "invalid doc id"),
    ("fine.md", MARKDOWN.encode(), {"date": "2024-02-31"}, 422, "YYYY-MM-DD"),
    ("fine.md", MARKDOWN.encode(), {"lang": "de"}, 422, "lang"),
    ("empty.md", b"", {}, 422, "empty"),
]


def _bad_data(data: bytes | str) -> bytes:
    if isinstance(data, bytes):
        return data
    return {"locked": lambda: encrypt_pdf(make_pdf(PDF_PAGES), "user-secret"), "scan": make_scanned_pdf,
            "bomb": make_zip_bomb}[data]()


def test_bad_uploads_are_4xx_nothing_is_written_and_the_index_keeps_answering(client, built):
    """The battery: every bad upload while visitors ask, then a good one still works."""
    before = _snapshot(built.sources_dir)
    serving = client.app.state.service
    stop = threading.Event()
    asked: list[int] = []

    def visitor() -> None:
        while not stop.is_set():
            asked.append(client.post("/api/ask", json={"question": ASK}).status_code)

    thread = threading.Thread(target=visitor)
    thread.start()
    statuses = []
    try:
        for name, data, form, status, message in BAD_UPLOADS:
            r = _upload(client, name, _bad_data(data), **form)
            statuses.append(r.status_code)
            assert r.status_code == status, (name, r.text)
            detail = r.json()["detail"]
            assert message in (detail if isinstance(detail, str) else str(detail)), (name, detail)
        # malformed requests: no file, two bodies in one, not multipart at all
        for kwargs in ({"data": {"doc_id": "x"}}, {"content": b"--nope\r\n\r\n", "headers": {
                **AUTH, "Content-Type": "multipart/form-data; boundary=nope"}}, {"json": {"file": "x"}}):
            r = client.post("/api/admin/sources", **({"headers": AUTH} | kwargs))
            statuses.append(r.status_code)
            assert 400 <= r.status_code < 500 and r.json()["detail"], r.text
        assert client.delete("/api/admin/sources/..%2F..%2Fserver.py", headers=AUTH).status_code == 404
    finally:
        stop.set()
        thread.join()
    assert not [s for s in statuses if s >= 500]
    assert asked and set(asked) == {200}
    assert _snapshot(built.sources_dir) == before  # no temporary file, no original, no sidecar
    assert client.app.state.service is serving  # no reindex started
    assert client.get("/api/admin/reindex", headers=AUTH).json()["state"] == "idle"

    r = _upload(client, "guide.md", MARKDOWN.encode())
    assert r.status_code == 202
    assert _done(client)["serving"]["docs"] == 4


def test_an_upload_while_a_build_holds_the_lock_is_409_and_writes_nothing(client, built):
    before = _snapshot(built.sources_dir)
    with build_lock(built.index_dir):
        r = _upload(client, "guide.md", MARKDOWN.encode())
    assert r.status_code == 409 and "reindex is running" in r.json()["detail"]
    assert _snapshot(built.sources_dir) == before


def test_a_failing_build_after_an_upload_leaves_the_previous_index_serving(client, built, monkeypatch):
    import qa.reindex

    def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("disk on fire")

    serving = client.app.state.service
    monkeypatch.setattr(qa.reindex, "build_on_disk", broken)
    assert _upload(client, "omega.docx", make_docx()).status_code == 202
    status = _done(client)
    assert status["state"] == "failed" and "disk on fire" in status["error"]
    assert client.app.state.service is serving
    assert client.post("/api/ask", json={"question": ASK}).status_code == 200
    # the source is in place, whole, for the next reindex
    assert (built.sources_dir / "omega.txt").read_text(encoding="utf-8").startswith("Technopark Omega in 2023")


def test_replace_and_the_upload_limit(client, built):
    r = _upload(client, "guide.md", MARKDOWN.encode())
    assert r.status_code == 202
    _done(client)
    assert _upload(client, "guide.md", MARKDOWN.encode()).status_code == 409
    r = _upload(client, "guide.md", MARKDOWN.replace("9:00 to 18:00", "8:00 to 20:00").encode(), replace="true")
    assert r.status_code == 202
    _done(client)
    assert "8:00 to 20:00" in client.get("/api/sources/guide").json()["text"]
    # a Cyrillic file name (sent as UTF-8 in the form) becomes an ASCII id
    r = _upload(client, "Памятка посетителя.md", MARKDOWN.encode())
    assert r.status_code == 202 and r.json()["source"]["doc_id"] == "pamyatka-posetitelya"
    _done(client)
    # over the upload limit plus the form's overhead: refused before the body is read whole
    r = _upload(client, "huge.txt", b"a" * (2 << 20))
    assert r.status_code == 413


def test_the_schema_documents_the_sources_api(client):
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/api/admin/sources"]["post"]
    assert {"202", "401", "409", "413", "415", "422"} <= set(post["responses"])
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert "page" in spec["components"]["schemas"]["CitationOut"]["properties"]
    # a wrong method names the right ones, as for the app's own routes
    for method, path, allow in [("put", "/api/admin/sources", "GET, POST"), ("get", "/api/admin/sources/x", "DELETE")]:
        r = getattr(client, method)(path, headers=AUTH)
        assert r.status_code == 405 and r.headers["allow"] == allow


def test_an_upload_may_take_longer_to_arrive_than_a_question(built, encoder):
    """A document over a slow link: with the token its body gets QA_UPLOAD_TIMEOUT_S, not
    the question's deadline; without it, the usual deadline (408)."""
    import anyio
    import httpx

    s = built.model_copy(update={"request_timeout_s": 0.3, "upload_timeout_s": 30.0})
    app = server.create_app(s, service=QAService(open_index(s), encoder, s))
    request = httpx.Request("POST", "http://test/api/admin/sources", files={"file": ("guide.md", MARKDOWN.encode())})
    body = request.read()
    pieces = [body[i:i + len(body) // 5 + 1] for i in range(0, len(body), len(body) // 5 + 1)]

    def call(headers: dict[str, str]) -> int:
        sent: list[dict[str, Any]] = []

        async def main() -> None:
            queue = list(pieces)

            async def receive() -> dict[str, Any]:
                await anyio.sleep(0.15)  # the whole body takes ~0.9 s, three times the deadline
                chunk = queue.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            raw = [(k.lower().encode(), v.encode()) for k, v in {**dict(request.headers), **headers}.items()]
            scope = {"type": "http", "method": "POST", "path": "/api/admin/sources", "raw_path": b"/api/admin/sources",
                     "query_string": b"", "headers": raw, "client": ("198.51.100.7", 1), "server": ("test", 80),
                     "scheme": "http", "http_version": "1.1", "root_path": ""}
            with anyio.fail_after(30):
                await app(scope, receive, send)

        anyio.run(main)
        return sent[0]["status"]

    assert call({}) == 408
    assert call(AUTH) == 202
    assert app.state.reindexer.wait(120).state == "succeeded"

"""Reliability and security of the server: junk input, floods, slow answers, reindexing
while serving, damaged indexes, killed processes, injection, lost writes.

Everything here runs on the tiny corpus; the servers started in subprocesses listen on
127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import schemathesis
from fastapi.testclient import TestClient
from pydantic import SecretStr

import qa.reindex
import server
from qa import cli
from qa.config import PROJECT_ROOT, Settings
from qa.index import build_lock, build_on_disk, current_dir, open_index
from qa.limits import CpuRunner, Overloaded, RateLimiter
from qa.pipeline import QAService
from qa.store import Store
from qa.workers import free_port

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ASK = "When was Technopark Alpha founded?"


@pytest.fixture()
def make_client(tiny_index, encoder, tmp_path) -> Iterator[Any]:
    """A client of an app over the tiny index with a private database; settings overridable."""
    index, base = tiny_index
    opened: list[Any] = []

    def make(client: tuple[str, int] = ("198.51.100.7", 50000), **overrides: Any) -> TestClient:
        s = base.model_copy(update={"abstain_threshold": 0.0, "db_path": tmp_path / "qa.sqlite3", **overrides})
        store = Store(s.db_path)
        c = TestClient(server.create_app(s, service=QAService(index, encoder, s), store=store), client=client)
        opened.append(store)
        return c

    yield make
    for store in opened:
        store.close()


def _rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def _wait_until(predicate: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.05)


# ------------------------------------------------------------------ input handling


@pytest.mark.parametrize("question", [
    "Когда основан Technopark Alpha?",                        # mixed scripts
    "🚀 When was Technopark Alpha founded? 🚀",               # emoji
    "\u200fWhen was Technopark Alpha founded?\u200e",          # right-to-left / left-to-right marks
    "When was \u202eTechnopark Alpha\u202c founded?",          # a bidi override inside
    "Ｗｈｅｎ ｗａｓ Ｔｅｃｈｎｏｐａｒｋ Ａｌｐｈａ ｆｏｕｎｄｅｄ?",  # full-width letters
    "👨‍👩‍👧",                                                    # an emoji sequence (zero-width joiners)
    "😀" * 300,
    "\u200b",                                                  # a zero-width space: not whitespace in Python
    "שלום, מתי נוסד הטכנופארק?",                              # a language the sources do not have
    "When\twas\nTechnopark\r\nAlpha founded?",                 # tab and newlines are not control characters here
    "<script>alert(1)</script>",
])
def test_unusual_questions_are_answered_or_declined_never_5xx(make_client, tmp_path, question):
    client = make_client(abstain_threshold=0.3)
    r = client.post("/api/ask", json={"question": question})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["question"] == question.strip() and data["lang"] in ("en", "ru")
    assert data["abstained"] or data["answer"] in data["citations"][0]["quote"]
    logged = _rows(tmp_path / "qa.sqlite3", "SELECT question FROM questions WHERE answer_id = ?", (data["answer_id"],))
    assert logged == [(question.strip(),)]  # stored verbatim


@pytest.mark.parametrize(("body", "content_type"), [
    (b'{"question": "When?"}', "text/plain"),                  # not declared as JSON
    (b'\xff\xfe{"question": "When?"}', "application/json"),    # not UTF-8
    (b'{"question": "\xff"}', "application/json"),
    (b"[" * 50_000 + b"]" * 50_000, "application/json"),       # deeper than the JSON parser goes
    (b'{"question": NaN}', "application/json"),
    (b'{"question": 1e999999}', "application/json"),
    (b'{"question": {"$gt": ""}}', "application/json"),
    (b'{"question": "When?", "lang": "EN"}', "application/json"),
    (b'{"question": "When?", "history": [null]}', "application/json"),
    (b'{"question": "When?", "history": [{"question": "  "}]}', "application/json"),
    (b'{"question": "When?", "history": [{"question": "a\\u0000"}]}', "application/json"),
])
def test_more_malformed_bodies_are_4xx_with_a_message(make_client, body, content_type):
    r = make_client().post("/api/ask", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert detail and (isinstance(detail, str) or all(d["msg"] for d in detail))


def test_a_streamed_body_over_the_limit_is_413(make_client):
    client = make_client(max_body_bytes=4096)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size shows only while reading
        yield b'{"question": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    r = client.post("/api/ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than 4096 bytes" in r.json()["detail"]
    assert r.headers["x-content-type-options"] == "nosniff"
    ok = client.post("/api/ask", content=json.dumps({"question": "x" * 900}).encode(),
                     headers={"Content-Type": "application/json"})
    assert ok.status_code == 200


def test_a_body_trickling_in_gets_408_instead_of_holding_the_connection():
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            pytest.fail("the app was reached")

        async def receive() -> dict[str, Any]:
            await anyio.sleep(0.2)  # one byte every 0.2 s
            return {"type": "http.request", "body": b"{", "more_body": True}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        guard = server.Guard(app, limiter=RateLimiter(0, 1), max_body=1 << 20, body_timeout_s=0.5)
        scope = {"type": "http", "method": "POST", "path": "/api/ask", "headers": [(b"content-type", b"application/json")],
                 "client": ("198.51.100.7", 1)}
        with anyio.fail_after(5):
            await guard(scope, receive, send)

    anyio.run(main)
    assert sent[0]["status"] == 408 and json.loads(sent[1]["body"]) == {
        "detail": "the request body did not arrive within 0.5 s"}


def test_the_length_limit_counts_what_was_sent(make_client):
    client = make_client(max_question_chars=50)
    assert client.post("/api/ask", json={"question": "a" * 50}).status_code == 200
    r = client.post("/api/ask", json={"question": "a" * 49 + "  "})
    assert r.status_code == 422 and r.json()["detail"] == "the question is too long (51 characters, at most 50)"
    spec = client.get("/openapi.json").json()
    assert spec["components"]["schemas"]["AskRequest"]["properties"]["question"]["maxLength"] == 50


@pytest.mark.parametrize(("argv", "message"), [
    (["ask", ""], "empty"), (["ask", " \t "], "empty"), (["ask", "a\x00b"], "control"), (["ask", "x" * 1001], "too long"),
    (["ask", "caf\udce9"], "not valid UTF-8"), (["ask", "When?", "--history", "\x07"], "control"),
    (["search", "   "], "the query is empty"), (["search", "a\x1bb"], "control"), (["search", "\udcff"], "UTF-8"),
])
def test_qa_ask_and_search_refuse_bad_input_with_exit_2(monkeypatch, capsys, argv, message):
    import qa.embedding

    # Checked before anything is loaded.
    monkeypatch.setattr(qa.embedding, "load_encoder", lambda *a, **k: pytest.fail("loaded the encoder"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("qa: ") and message in err and "Traceback" not in err


# ------------------------------------------------------------------ rate limit


def test_token_bucket_burst_refill_and_retry_after():
    now = [1000.0]
    limiter = RateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [limiter.hit("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.hit("a")
    assert wait == pytest.approx(1.0) and RateLimiter.retry_after(wait) == "1"
    assert limiter.hit("b") == 0.0  # per client
    now[0] += 0.5
    assert limiter.hit("a") == pytest.approx(0.5)  # a refused request does not spend a token
    now[0] += 0.5
    assert limiter.hit("a") == 0.0
    now[0] += 3600
    assert [limiter.hit("a") for _ in range(4)][-1] > 0  # refills to the burst, no further
    assert RateLimiter.retry_after(0.01) == "1" and RateLimiter.retry_after(2.2) == "3"


def test_token_bucket_keeps_a_bounded_number_of_clients():
    limiter = RateLimiter(per_minute=60, burst=1, max_clients=100)
    for i in range(1000):
        limiter.hit(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._buckets) == 100
    off = RateLimiter(per_minute=0, burst=1)
    assert not off.enabled and all(off.hit("a") == 0 for _ in range(1000)) and not off._buckets


def test_too_many_requests_get_429_with_retry_after(make_client):
    client = make_client(rate_limit_per_minute=6, rate_limit_burst=3)
    assert [client.get("/api/sources/alpha-technopark").status_code for _ in range(3)] == [200] * 3
    r = client.post("/api/ask", json={"question": ASK})
    assert r.status_code == 429 and r.headers["retry-after"] == "10"
    assert r.json() == {"detail": "too many requests: try again in 10 s"}
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
    # the answer is the one the OpenAPI schema describes
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    schema["/api/ask"]["POST"].validate_response(r)
    # another client is not affected; health checks, pages and docs are not limited
    other = TestClient(client.app, client=("203.0.113.9", 40000))
    assert other.get("/api/sources/alpha-technopark").status_code == 200
    for path in ("/healthz", "/readyz", "/", "/widget.js", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_rate_limit_zero_turns_it_off(make_client):
    client = make_client(rate_limit_per_minute=0, rate_limit_burst=1)
    assert {client.get("/api/sources/alpha-technopark").status_code for _ in range(200)} == {200}


def test_a_cross_origin_widget_can_read_429_and_retry_after(make_client):
    client = make_client(rate_limit_per_minute=60, rate_limit_burst=1, cors_origins=["https://partner.example"])
    origin = {"Origin": "https://partner.example"}
    assert client.post("/api/ask", json={"question": ASK}, headers=origin).status_code == 200
    r = client.post("/api/ask", json={"question": ASK}, headers=origin)
    assert r.status_code == 429 and r.headers["access-control-allow-origin"] == "https://partner.example"
    assert "retry-after" in r.headers["access-control-expose-headers"].lower()


# ------------------------------------------------------------------ timeouts


def test_a_slow_answer_is_503_not_a_hung_connection(make_client, monkeypatch):
    client = make_client(request_timeout_s=0.3)
    service = client.app.state.service
    stuck = threading.Event()  # an answer that would take a minute
    monkeypatch.setattr(service, "ask", lambda *a, **k: stuck.wait(60))
    monkeypatch.setattr(service.retriever, "search", lambda *a, **k: stuck.wait(60))
    try:
        for call in (lambda: client.post("/api/ask", json={"question": ASK}),
                     lambda: client.get("/api/search", params={"q": "Alpha"})):
            t0 = time.perf_counter()
            r = call()
            assert r.status_code == 503 and time.perf_counter() - t0 < 30
            assert "too busy to answer in time" in r.json()["detail"] and r.headers["retry-after"] == "5"
    finally:
        stuck.set()


def test_work_abandoned_while_queued_is_skipped():
    runner = CpuRunner(slots=1, timeout_s=0.2)
    ran: list[str] = []

    def slow() -> None:
        time.sleep(0.6)
        ran.append("slow")

    async def main() -> list[Any]:
        results: list[Any] = [None, None]

        async def call(i: int, fn: Any) -> None:
            try:
                results[i] = await runner.run(fn)
            except Overloaded as e:
                results[i] = e

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, 0, slow)
            await anyio.sleep(0.05)
            tg.start_soon(call, 1, lambda: ran.append("queued"))
        return results

    results = anyio.run(main)
    assert all(isinstance(r, Overloaded) for r in results)
    _wait_until(lambda: "slow" in ran, 30)  # the running job finishes in its thread...
    time.sleep(0.3)
    assert ran == ["slow"]  # ...and the queued one never runs


# ------------------------------------------------------------------ CORS and headers


def test_cors_only_for_the_allow_list(make_client):
    client = make_client(cors_origins=["https://partner.example"])
    allowed = client.get("/api/sources/alpha-technopark", headers={"Origin": "https://partner.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://partner.example"
    assert "access-control-allow-credentials" not in allowed.headers
    for origin in ("https://evil.example", "null", "https://partner.example.evil.example", "http://partner.example"):
        r = client.get("/api/sources/alpha-technopark", headers={"Origin": origin})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers, origin
        pre = client.options("/api/ask", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in pre.headers, origin


def test_same_origin_only_by_default(make_client):
    client = make_client()
    r = client.get("/api/sources/alpha-technopark", headers={"Origin": "https://partner.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/api/ask", headers={"Origin": "https://partner.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_errors_carry_the_security_headers_too(make_client):
    client = make_client(rate_limit_per_minute=60, rate_limit_burst=5)
    responses = [client.get("/api/nothing"), client.put("/api/ask"), client.post("/api/ask", json={}),
                 client.get("/api/sources/..%2F..%2Fetc%2Fpasswd")]
    responses += [client.get("/api/sources/x") for _ in range(2)]
    assert [r.status_code for r in responses] == [404, 405, 422, 404, 404, 429]
    for r in responses:
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert r.headers["content-security-policy"] == server.API_CSP
        assert r.headers["content-type"] == "application/json"
    assert responses[1].headers["allow"] == "POST"
    page = client.get("/")
    assert page.headers["content-security-policy"] == server.PAGE_CSP and page.headers["x-frame-options"] == "DENY"


# ------------------------------------------------------------------ path traversal and injection


@pytest.mark.parametrize("path", [
    "/api/sources/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/api/sources/..%252F..%252Fetc%252Fpasswd",
    "/api/sources/%2Fetc%2Fpasswd", "/api/sources/..%5C..%5Cetc%5Cpasswd", "/api/sources/..\\..\\qa.sqlite3",
    "/api/sources/%2e%2e", "/api/sources/.", "/api/sources/~root", "/api/sources/alpha-technopark.meta.json",
    "/api/sources/%c0%ae%c0%ae%2f", "/api/sources/alpha-technopark%2F..%2F..%2Fserver.py",
    "/api/sources/" + "%2e%2e%2f" * 20 + "etc%2fpasswd",
])
def test_more_traversal_attempts_are_404(make_client, path):
    r = make_client().get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "root:" not in r.text and "import" not in r.text


def test_sql_in_questions_and_comments_is_stored_verbatim(make_client, tmp_path):
    client = make_client()
    db = tmp_path / "qa.sqlite3"
    question = "When was Technopark Alpha founded?'); DROP TABLE questions; --"
    comment = "x'); DELETE FROM feedback; UPDATE questions SET question = 'owned'; --"
    answer_id = client.post("/api/ask", json={"question": question}).json()["answer_id"]
    assert client.post("/api/feedback", json={"answer_id": answer_id, "rating": "down", "comment": comment}).status_code == 200
    assert client.post("/api/feedback", json={"answer_id": "' OR '1'='1", "rating": "up"}).status_code == 404
    assert client.get("/api/search", params={"q": "' UNION SELECT * FROM questions --"}).status_code == 200
    assert _rows(db, "SELECT question FROM questions") == [(question,)]
    assert _rows(db, "SELECT comment FROM feedback") == [(comment,)]
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]


def test_the_store_builds_no_sql_from_values():
    source = (PROJECT_ROOT / "qa" / "store.py").read_text(encoding="utf-8")
    # The only interpolated SQL: integer pragmas and constant fragments of the store itself.
    for line in re.findall(r"execute\(f[\"'].*", source):
        allowed = r"""execute\(f"PRAGMA (\w+ = \{int\(\w+\)\}|user_version = \{SCHEMA_VERSION\})"\)"""
        assert re.fullmatch(allowed, line.strip()), line
    assert ".format(" not in source.replace('_LATEST.format(col="', "") and " % (" not in source


# ------------------------------------------------------------------ data safety


def test_concurrent_asks_and_feedback_lose_nothing(make_client, tmp_path):
    client = make_client(rate_limit_per_minute=0)  # one test client stands for many visitors
    threads, per_thread = 8, 10
    questions = [ASK, "Сколько технопарков в Москве?", "Где выпускают аккумуляторы?", "What does Gamma make?"]
    failures: list[str] = []

    def visitor(n: int) -> None:
        for i in range(per_thread):
            r = client.post("/api/ask", json={"question": f"{questions[(n + i) % len(questions)]} #{n}-{i}"})
            if r.status_code != 200:
                failures.append(r.text)
                continue
            f = client.post("/api/feedback", json={"answer_id": r.json()["answer_id"], "rating": "up" if i % 2 else "down"})
            if f.status_code != 200:
                failures.append(f.text)

    pool = [threading.Thread(target=visitor, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    db = tmp_path / "qa.sqlite3"
    n = threads * per_thread
    print(f"\nconcurrent writes: {threads} threads x {per_thread} asks + feedback: {len(failures)} failed, "
          f"rows {_rows(db, 'SELECT COUNT(*) FROM questions')[0][0]} questions, "
          f"{_rows(db, 'SELECT COUNT(*) FROM feedback')[0][0]} feedback (expected {n} each)")
    assert failures == []
    assert _rows(db, "SELECT COUNT(*), COUNT(DISTINCT answer_id), COUNT(DISTINCT question) FROM questions") == [(n, n, n)]
    assert _rows(db, "SELECT COUNT(*), SUM(rating = 'up') FROM feedback") == [(n, n // 2)]


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@contextlib.contextmanager
def _uvicorn(settings: Settings, db: Path, log: Path, workers: int = 0,
             **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``uvicorn server:app`` on a free port, or with ``workers`` the processes ``qa serve
    --workers`` runs (qa/workers.py)."""
    port = free_port()
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_SOURCES_DIR": str(settings.sources_dir),
                "QA_INDEX_DIR": str(settings.index_dir), "QA_CHUNK_SIZE": str(settings.chunk_size),
                "QA_CHUNK_OVERLAP": str(settings.chunk_overlap), "QA_DB_PATH": str(db), **env}
    with log.open("wb") as out:
        server = ["qa.workers", "--workers", str(workers)] if workers else ["uvicorn", "server:app"]
        proc = subprocess.Popen([sys.executable, "-m", *server, "--host", "127.0.0.1", "--port", str(port)],
                                cwd=PROJECT_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                if r.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not become ready:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_the_database_survives_a_killed_server(tiny_index, tmp_path):
    _index, s = tiny_index  # its index is already built: the server only loads it
    db = tmp_path / "qa.sqlite3"
    with _uvicorn(s, db, tmp_path / "server.log") as (proc, url):
        ids = []
        for i in range(12):
            status, data = _post(f"{url}/api/ask", {"question": f"{ASK} ({i})"})
            assert status == 200, data
            ids.append(data["answer_id"])
        for answer_id in ids[:6]:
            assert _post(f"{url}/api/feedback", {"answer_id": answer_id, "rating": "up"})[0] == 200
        proc.send_signal(signal.SIGKILL)  # no shutdown, no checkpoint: the WAL is all there is
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    print(f"\nkilled server: {len(ids)} answers and 6 ratings given, then SIGKILL; integrity_check "
          f"{_rows(db, 'PRAGMA integrity_check')[0][0]}, {_rows(db, 'SELECT COUNT(*) FROM questions')[0][0]} questions "
          f"and {_rows(db, 'SELECT COUNT(*) FROM feedback')[0][0]} ratings on disk")
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert sorted(r[0] for r in _rows(db, "SELECT answer_id FROM questions")) == sorted(ids)
    assert _rows(db, "SELECT COUNT(*) FROM feedback") == [(6,)]
    with Store(db) as store:  # and it takes new writes
        assert store.add_feedback(ids[7], "down")
        assert store.totals() == {"questions": 12, "unanswered": 0, "up": 6, "down": 1}


# ------------------------------------------------------------------ admin reindex


@pytest.fixture()
def built(settings, encoder, tmp_path) -> Settings:
    """A private corpus with its index built, and settings with an admin token. The answer
    time limit is long: a request held across a reindex (parsers loaded, index built) must
    not time out on a busy machine; the limit has its own test."""
    build_on_disk(settings, encoder=encoder)
    return settings.model_copy(update={"admin_token": SecretStr(TOKEN), "db_path": tmp_path / "qa.sqlite3",
                                       "rate_limit_per_minute": 0, "abstain_threshold": 0.0,
                                       "request_timeout_s": 120.0})


@pytest.fixture()
def admin_client(built, encoder) -> Iterator[TestClient]:
    store = Store(built.db_path)
    yield TestClient(server.create_app(built, service=QAService(open_index(built), encoder, built), store=store))
    store.close()


def _reindex_done(client: TestClient) -> dict[str, Any]:
    status: dict[str, Any] = {}

    def done() -> bool:
        status.update(client.get("/api/admin/reindex", headers=AUTH).json())
        return status["state"] != "running"

    _wait_until(done, 120)
    return status


def test_reindex_does_not_exist_without_a_token(make_client):
    client = make_client()
    for call in (client.get, client.post):
        r = call("/api/admin/reindex", headers=AUTH)
        assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer "},
                                     {"Authorization": f"bearer {TOKEN[:-1]}"}])
def test_reindex_needs_the_token(admin_client, headers):
    for call in (admin_client.get, admin_client.post):
        r = call("/api/admin/reindex", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "admin token" in r.json()["detail"]
    assert admin_client.get("/api/admin/reindex", headers=AUTH).json()["state"] == "idle"


def test_asks_during_a_reindex_all_succeed_and_the_new_index_is_swapped_in(admin_client, built, monkeypatch):
    (built.sources_dir / "delta.txt").write_text("Technopark Delta opened a wind tunnel in 2024.", encoding="utf-8")
    old = admin_client.app.state.service
    stop = threading.Event()
    results: list[int] = []
    real_build = qa.reindex.build_on_disk

    def build_among_asks(*a: Any, **k: Any) -> Any:
        # The tiny corpus builds in well under a second: make sure asks overlap the
        # rebuild's start, its work and the moments before the swap.
        n = len(results)
        _wait_until(lambda: len(results) >= n + 10)
        summary = real_build(*a, **k)
        n = len(results)
        _wait_until(lambda: len(results) >= n + 10)
        return summary

    monkeypatch.setattr(qa.reindex, "build_on_disk", build_among_asks)

    def visitor(q: str) -> None:
        while not stop.is_set():
            results.append(admin_client.post("/api/ask", json={"question": q}).status_code)

    pool = [threading.Thread(target=visitor, args=(q,)) for q in (ASK, "Сколько технопарков в Москве?", "wind tunnel")]
    for t in pool:
        t.start()
    try:
        _wait_until(lambda: len(results) >= 3)
        r = admin_client.post("/api/admin/reindex", headers=AUTH)
        assert r.status_code == 202 and r.json()["state"] == "running" and r.json()["serving"]["docs"] == 3
        asked_before = len(results)
        status = _reindex_done(admin_client)
        during = len(results) - asked_before
        _wait_until(lambda: len(results) >= asked_before + during + 3)  # and some after the swap
    finally:
        stop.set()
        for t in pool:
            t.join()
    print(f"\nreindex under asks: {len(results)} asks, {during} of them during the {status['seconds']} s rebuild, "
          f"{len(results) - results.count(200)} failed")
    assert status["state"] == "succeeded" and status["error"] is None, status
    assert status["docs"] == 4 and status["serving"]["docs"] == 4 and status["seconds"] > 0
    assert during > 0 and results.count(200) == len(results), sorted(set(results))
    assert admin_client.app.state.service is not old
    assert admin_client.get("/api/sources/delta").status_code == 200
    assert admin_client.get("/readyz").json()["docs"] == 4


def test_a_request_in_flight_keeps_the_service_it_started_with(admin_client, built, monkeypatch):
    old = admin_client.app.state.service
    inside, release = threading.Event(), threading.Event()
    real_ask = old.ask

    def held_ask(*a: Any, **k: Any) -> Any:
        inside.set()
        release.wait(60)
        return real_ask(*a, **k)

    monkeypatch.setattr(old, "ask", held_ask)
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(admin_client.post("/api/ask", json={"question": ASK})))
    t.start()
    assert inside.wait(30)
    assert admin_client.post("/api/admin/reindex", headers=AUTH).status_code == 202
    assert _reindex_done(admin_client)["state"] == "succeeded"
    assert admin_client.app.state.service is not old
    release.set()
    t.join()
    assert out[0].status_code == 200 and out[0].json()["short_answer"] == "March 2012"


def test_a_second_reindex_while_one_runs_is_409(admin_client, built, monkeypatch):
    gate = threading.Event()
    real = qa.reindex.build_on_disk

    def gated(*a: Any, **k: Any) -> Any:
        gate.wait(60)
        return real(*a, **k)

    monkeypatch.setattr(qa.reindex, "build_on_disk", gated)
    assert admin_client.post("/api/admin/reindex", headers=AUTH).status_code == 202
    again = admin_client.post("/api/admin/reindex", headers=AUTH)
    assert again.status_code == 409 and "already running" in again.json()["detail"]
    assert admin_client.get("/api/admin/reindex", headers=AUTH).json()["state"] == "running"
    gate.set()
    assert _reindex_done(admin_client)["state"] == "succeeded"
    # a build by another process (`qa build`) holds the same lock
    with build_lock(built.index_dir, wait=False):
        r = admin_client.post("/api/admin/reindex", headers=AUTH)
        assert r.status_code == 409 and "another build" in r.json()["detail"]
    assert admin_client.post("/api/admin/reindex", headers=AUTH).status_code == 202
    assert _reindex_done(admin_client)["state"] == "succeeded"


def test_a_failing_build_leaves_the_previous_index_serving(admin_client, built, monkeypatch):
    old = admin_client.app.state.service
    link = os.readlink(current_dir(built))

    def broken(*a: Any, **k: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(qa.reindex, "build_on_disk", broken)
    assert admin_client.post("/api/admin/reindex", headers=AUTH).status_code == 202
    status = _reindex_done(admin_client)
    assert status["state"] == "failed" and "No space left on device" in status["error"]
    assert status["serving"]["docs"] == 3 and admin_client.app.state.service is old
    assert os.readlink(current_dir(built)) == link
    r = admin_client.post("/api/ask", json={"question": ASK})
    assert r.status_code == 200 and r.json()["short_answer"] == "March 2012"
    assert admin_client.get("/readyz").status_code == 200


_KILLED_BUILD = """
import os, signal, sys
import qa.index
real_save = qa.index.save
def save_then_die(data, directory, sources=None):
    qa.index._write_jsonl(directory / "docs.jsonl", iter([{"half": "written"}]))
    os.kill(os.getpid(), signal.SIGKILL)
qa.index.save = save_then_die
from qa.config import Settings
qa.index.build_on_disk(Settings())
"""


def test_a_build_killed_midway_leaves_the_previous_index_and_no_lock(admin_client, built):
    link = os.readlink(current_dir(built))
    (built.sources_dir / "delta.txt").write_text("Technopark Delta opened a wind tunnel in 2024.", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_SOURCES_DIR": str(built.sources_dir),
           "QA_INDEX_DIR": str(built.index_dir), "QA_CHUNK_SIZE": str(built.chunk_size),
           "QA_CHUNK_OVERLAP": str(built.chunk_overlap)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_BUILD], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode(errors="replace")[-2000:]
    assert os.readlink(current_dir(built)) == link  # nothing was published
    leftovers = list((built.index_dir / "builds").glob(".tmp-*"))
    assert leftovers
    assert admin_client.post("/api/ask", json={"question": ASK}).status_code == 200
    with build_lock(built.index_dir, wait=False):  # the kernel released the dead build's lock
        pass
    assert admin_client.post("/api/admin/reindex", headers=AUTH).status_code == 202
    assert _reindex_done(admin_client)["state"] == "succeeded"
    assert admin_client.get("/api/sources/delta").status_code == 200
    assert not any(p.exists() for p in leftovers)  # the next build cleaned them up


@pytest.mark.parametrize(("damage", "message"), [
    (lambda d: (d / "chunks.faiss").write_bytes((d / "chunks.faiss").read_bytes()[:100]), "does not match its checksum"),
    (lambda d: (d / "docs.jsonl").write_text('{"doc_id": "x"}\n', encoding="utf-8"), "does not match its checksum"),
    (lambda d: (d / "sentences.npy").unlink(), "sentences.npy is missing"),
    (lambda d: (d / "manifest.json").write_text("{not json", encoding="utf-8"), "is damaged"),
])
def test_a_damaged_index_is_refused_at_startup_with_the_reason(built, encoder, monkeypatch, damage, message):
    import qa.embedding

    monkeypatch.setattr(qa.embedding, "load_encoder", lambda *a, **k: encoder)
    damage(current_dir(built).resolve())
    with TestClient(server.create_app(built)) as client:  # the lifespan loads the index
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "failed"
        assert message in ready.json()["detail"] and "qa build" in ready.json()["detail"]
        r = client.post("/api/ask", json={"question": ASK})
        assert r.status_code == 503 and message in r.json()["detail"] and r.headers["retry-after"]
        # a reindex repairs it without a restart
        assert client.post("/api/admin/reindex", headers=AUTH).status_code == 202
        assert _reindex_done(client)["state"] == "succeeded"
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/ask", json={"question": ASK}).json()["short_answer"] == "March 2012"


def test_qa_serve_refuses_a_damaged_index(built, encoder, monkeypatch, capsys):
    import qa.embedding

    monkeypatch.setattr(qa.embedding, "load_encoder", lambda *a, **k: encoder)
    for key, value in {"QA_SOURCES_DIR": built.sources_dir, "QA_INDEX_DIR": built.index_dir,
                       "QA_CHUNK_SIZE": built.chunk_size, "QA_CHUNK_OVERLAP": built.chunk_overlap}.items():
        monkeypatch.setenv(key, str(value))
    chunks = current_dir(built).resolve() / "chunks.faiss"
    chunks.write_bytes(chunks.read_bytes()[:-10])
    assert cli.main(["serve", "--port", "8124"]) == 1
    assert "chunks.faiss does not match its checksum" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    """The worker processes of ``pid`` (not multiprocessing's resource tracker), read as
    bench/run.py reads a process's children."""
    out = []
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    out.append(int(child))
    return out


def _listening(port: int) -> int:
    """How many sockets listen on the loopback ``port``."""
    return sum(1 for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
               if int(line.split()[1].split(":")[1], 16) == port and line.split()[3] == "0A")


def _server_side_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server end of the loopback connection from ``client_port``."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == server_port and int(f[2].split(":")[1], 16) == client_port:
            inode = f[9]
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads connections on Linux")
def test_workers_share_the_port_spread_the_connections_and_are_replaced(tiny_index, tmp_path):
    import http.client

    _index, s = tiny_index
    with _uvicorn(s, tmp_path / "qa.sqlite3", tmp_path / "server.log", workers=2) as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        workers = _children(proc.pid)
        assert len(workers) == 2
        deadline = time.monotonic() + 120
        while _listening(port) < 2:  # the first worker ready answers /readyz before the second listens
            assert time.monotonic() < deadline, "the second worker never listened"
            time.sleep(0.2)
        # 16 keep-alive clients connecting together: with one shared socket the first worker
        # to wake took them all; with a socket each both get some (all on one: p = 2 / 2**16)
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(16)]
        for c in conns:
            c.connect()
        for c in conns:
            c.request("GET", "/readyz")
            assert c.getresponse().read() and True
        owners = [_server_side_owner(port, c.sock.getsockname()[1], workers) for c in conns]
        for c in conns:
            c.close()
        assert None not in owners and set(owners) == set(workers), owners
        # a second server on the same port is refused, not let into the group
        second = subprocess.run([sys.executable, "-m", "qa.workers", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "in use" in second.stderr
        # a worker that dies is replaced; the other answers meanwhile (once the dead one's
        # socket is gone: a connection the kernel put in its queue is reset)
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _listening(port) > 1:
            assert time.monotonic() < deadline, "the killed worker's socket stayed"
            time.sleep(0.05)
        assert _post(f"{url}/api/ask", {"question": ASK})[0] == 200
        deadline = time.monotonic() + 120
        while len(_children(proc.pid)) < 2 or workers[0] in _children(proc.pid):
            assert time.monotonic() < deadline, "no worker started in place of the one killed"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not _children(proc.pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_supervisor_killed_takes_its_workers_with_it(tiny_index, tmp_path):
    _index, s = tiny_index
    with _uvicorn(s, tmp_path / "qa.sqlite3", tmp_path / "server.log", workers=1) as (proc, url):
        (worker,) = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)  # no chance to stop them: the workers must notice themselves
        proc.wait()
        deadline = time.monotonic() + 30
        while Path(f"/proc/{worker}").exists() and b"spawn_main" in Path(f"/proc/{worker}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "an orphaned worker goes on holding the port"
            time.sleep(0.2)
        port = int(url.rsplit(":", 1)[1])
        assert _listening(port) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers' own sockets are Linux's")
def test_workers_that_cannot_start_stop_the_server(capfd, monkeypatch, tmp_path):
    from qa import workers

    # not started again and again: the supervisor stops and says so (an app not found; one
    # that raises as it is imported)
    assert workers.run("127.0.0.1", free_port(), 2, app="no_such_module:app", log_level="critical") == 1
    assert "could not start" in capfd.readouterr().err
    (tmp_path / "fail").touch()
    monkeypatch.setenv("QA_TEST_FAIL_FLAG", str(tmp_path / "fail"))
    assert workers.run("127.0.0.1", free_port(), 2, app="tests.flaky_app:app", log_level="critical") == 1
    assert "could not start" in capfd.readouterr().err


def _open_store(path: str, barrier: Any, errors: Any) -> None:
    from qa.store import Store

    barrier.wait()
    try:
        Store(Path(path)).close()
    except Exception as e:  # reported to the test
        errors.put(repr(e))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_two_workers_open_a_new_question_log_together(tmp_path):
    # two server workers starting at once on a new database: one of them failed to start
    # ("database is locked" from the journal-mode change) in about half the tries
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    for i in range(20):
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=_open_store, args=(str(tmp_path / f"qa{i}.sqlite3"), barrier, errors))
                 for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
    assert errors.empty(), errors.get()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers' own sockets are Linux's")
def test_workers_replacement_that_cannot_start_is_tried_again_while_the_other_serves(tmp_path):
    flag = tmp_path / "fail"
    port = free_port()
    env = {**os.environ, "QA_TEST_FAIL_FLAG": str(flag)}
    proc = subprocess.Popen([sys.executable, "-m", "qa.workers", "--app", "tests.flaky_app:app", "--workers", "2",
                             "--port", str(port), "--log-level", "warning"], cwd=PROJECT_ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while _listening(port) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "the workers did not start"
            time.sleep(0.1)
        flag.touch()  # from now on a new worker cannot start
        os.kill(_children(proc.pid)[0], signal.SIGKILL)
        end = time.monotonic() + 4  # its replacements fail (after 1 s, then 2 s more)
        while time.monotonic() < end:
            assert proc.poll() is None, "the server stopped for a replacement that could not start"
            if _listening(port) == 1:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
                    assert r.status == 200  # the other worker serves meanwhile
            time.sleep(0.2)
        flag.unlink()
        deadline = time.monotonic() + 30
        while _listening(port) < 2:  # the next try starts
            assert time.monotonic() < deadline, "no worker started once it could"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None and proc.stderr.read().count("starting another") >= 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

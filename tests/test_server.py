"""The HTTP API (server.py) on the tiny corpus, the question log and feedback store
(qa/store.py) and ``qa report`` / ``qa serve``."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import server
from qa import cli
from qa.config import Settings
from qa.pipeline import QAService
from qa.store import Store, question_key


@pytest.fixture()
def make_client(tiny_index, encoder, tmp_path):
    """A client of an app over the tiny index; ``threshold`` 0 answers everything, 1 declines."""
    index, base = tiny_index
    clients: list[TestClient] = []

    def make(threshold: float = 0.0, **overrides) -> TestClient:
        s = base.model_copy(update={"abstain_threshold": threshold, "db_path": tmp_path / "qa.sqlite3", **overrides})
        client = TestClient(server.create_app(s, service=QAService(index, encoder, s)))
        client.__enter__()  # runs the lifespan: opens the database
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture()
def client(make_client) -> TestClient:
    return make_client()


def _db(tmp_path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(tmp_path / "qa.sqlite3")
    db.row_factory = sqlite3.Row
    return db


def _source(client: TestClient, doc_id: str) -> str:
    r = client.get(f"/api/sources/{doc_id}")
    assert r.status_code == 200
    return r.json()["text"]


def check_answer(client: TestClient, data: dict) -> None:
    """The docs/design.md invariants, with the source text taken from /api/sources."""
    assert set(data) == {"answer_id", "question", "lang", "abstained", "answer", "short_answer", "confidence",
                         "citations", "message", "see_also"}
    assert isinstance(data["answer_id"], str) and len(data["answer_id"]) >= 16
    for c in data["citations"] + data["see_also"]:
        assert _source(client, c["doc_id"])[c["start"]:c["end"]] == c["quote"]
    if data["abstained"]:
        assert data["answer"] is None and data["short_answer"] is None and data["message"]
    else:
        assert data["answer"] in data["citations"][0]["quote"]
        assert data["short_answer"] is None or data["short_answer"] in data["answer"]


# ------------------------------------------------------------------ POST /api/ask


def test_ask_answers_with_citations_and_logs_the_question(client, tmp_path):
    r = client.post("/api/ask", json={"question": "  When was Technopark Alpha founded?  "})
    assert r.status_code == 200, r.text
    data = r.json()
    check_answer(client, data)
    assert data["question"] == "When was Technopark Alpha founded?" and data["lang"] == "en"
    assert not data["abstained"] and data["short_answer"] == "March 2012"
    assert data["citations"][0]["doc_id"] == "alpha-technopark"
    row = _db(tmp_path).execute("SELECT * FROM questions WHERE answer_id = ?", (data["answer_id"],)).fetchone()
    assert row["question"] == data["question"] and row["lang"] == "en" and row["abstained"] == 0
    assert row["short_answer"] == "March 2012" and row["doc_id"] == "alpha-technopark"
    assert row["confidence"] == pytest.approx(data["confidence"], abs=1e-4) and row["latency_ms"] > 0
    assert row["asked_at"].endswith("Z")


def test_ask_in_russian_with_history_in_both_shapes(client):
    earlier = "Что за лаборатория работает в технопарке «Бета»?"
    for history in ([earlier], [{"question": earlier, "answer": "В нём работает лаборатория фотоники."}],
                    [{"question": earlier}]):
        r = client.post("/api/ask", json={"question": "А когда его открыли?", "history": history, "lang": "auto"})
        assert r.status_code == 200, r.text
        data = r.json()
        check_answer(client, data)
        assert data["lang"] == "ru" and data["short_answer"] == "ноябре 2018 года"


def test_declines_in_the_question_language_and_logs_it(make_client, tmp_path):
    client = make_client(threshold=1.0)
    en = client.post("/api/ask", json={"question": "Who won the football world cup?"}).json()
    ru = client.post("/api/ask", json={"question": "Кто выиграл чемпионат мира по футболу?"}).json()
    for data in (en, ru):
        check_answer(client, data)
        assert data["abstained"] and data["citations"] == []
    assert en["lang"] == "en" and en["message"].startswith("I could not find")
    assert ru["lang"] == "ru" and "источниках" in ru["message"]
    rows = _db(tmp_path).execute("SELECT abstained, answer, doc_id FROM questions").fetchall()
    assert [tuple(r) for r in rows] == [(1, None, None), (1, None, None)]


def test_a_fixed_lang_sets_the_language_of_the_reply(make_client):
    client = make_client(threshold=1.0)
    data = client.post("/api/ask", json={"question": "Who won the football world cup?", "lang": "ru"}).json()
    assert data["lang"] == "ru" and "источниках" in data["message"]


@pytest.mark.parametrize(("question", "message"), [
    ("", "empty"), ("   \n\t ", "empty"), ("x" * 1001, "too long"), ("a\x00b", "control"), ("bell \x07", "control"),
])
def test_bad_questions_are_422_with_a_message(client, tmp_path, question, message):
    r = client.post("/api/ask", json={"question": question})
    assert r.status_code == 422
    assert message in r.json()["detail"]
    assert _db(tmp_path).execute("SELECT COUNT(*) FROM questions").fetchone()[0] == 0


@pytest.mark.parametrize("body", [
    b'{"question": "When?"',                     # invalid JSON
    b"not json at all",
    b"",
    b'["When was it founded?"]',                 # not an object
    b'{"question": 5}',                          # wrong types
    b'{"question": ["When?"]}',
    b'{"question": null}',
    b'{"question": "When?", "lang": "de"}',
    b'{"question": "When?", "history": "When?"}',
    b'{"question": "When?", "history": [5]}',
    b'{"question": "When?", "history": [{"question": "x", "extra": 1}]}',
    b'{"question": "When?", "debug": true}',     # unknown field
    b'{"lang": "en"}',                           # missing field
    b'{"question": "\\ud800"}',                  # an unpaired surrogate
])
def test_malformed_ask_bodies_are_422_not_5xx(client, body):
    r = client.post("/api/ask", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail and all(isinstance(d["msg"], str) and d["msg"] for d in detail)
    assert all("input" not in d for d in detail)  # the input is not echoed back


def test_history_limits(client):
    too_many = client.post("/api/ask", json={"question": "When?", "history": ["Where?"] * 11})
    assert too_many.status_code == 422 and "history" in too_many.text
    bad_turn = client.post("/api/ask", json={"question": "When?", "history": ["Where?", "  "]})
    assert bad_turn.status_code == 422 and bad_turn.json()["detail"] == "history[1]: the question is empty"
    ok = client.post("/api/ask", json={"question": "When?", "history": ["Where?"] * 10})
    assert ok.status_code == 200


def test_oversized_body_is_413(client):
    r = client.post("/api/ask", content=b'{"question": "' + b"x" * (Settings().max_body_bytes + 1) + b'"}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_wrong_method_and_unknown_route(client):
    assert client.get("/api/ask").status_code == 405
    assert client.get("/api/nothing").status_code == 404


def test_concurrent_asks_are_all_logged(client, tmp_path):
    questions = ["When was Technopark Alpha founded?", "Сколько технопарков в Москве?", "Где выпускают аккумуляторы?"] * 3
    results: list[int] = []

    def ask(q: str) -> None:
        results.append(client.post("/api/ask", json={"question": q}).status_code)

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * len(questions)
    assert _db(tmp_path).execute("SELECT COUNT(DISTINCT answer_id) FROM questions").fetchone()[0] == len(questions)


# ------------------------------------------------------------------ GET /api/search


def test_search_returns_passages_that_index_their_sources(client):
    r = client.get("/api/search", params={"q": "Сколько технопарков в Москве?", "k": 2})
    assert r.status_code == 200
    data = r.json()
    assert data["query"] == "Сколько технопарков в Москве?" and len(data["results"]) == 2
    top = data["results"][0]
    assert set(top) == {"doc_id", "chunk_id", "title", "url", "lang", "start", "end", "text", "score"}
    assert top["doc_id"] == "moscow-technoparks" and top["title"]
    for p in data["results"]:
        assert _source(client, p["doc_id"])[p["start"]:p["end"]] == p["text"]
    assert data["results"][0]["score"] >= data["results"][1]["score"]


@pytest.mark.parametrize("params", [
    {"q": "x", "k": 0}, {"q": "x", "k": 51}, {"q": "x", "k": -1}, {"q": "x", "k": "five"}, {"q": "x", "k": 1.5},
    {"k": 3}, {"q": ""}, {"q": "   "}, {"q": "a\x00b"}, {"q": "x" * 1001},
])
def test_bad_search_parameters_are_422(client, params):
    r = client.get("/api/search", params=params)
    assert r.status_code == 422, r.text


def test_search_k_bounds_are_inclusive(client):
    assert client.get("/api/search", params={"q": "Alpha", "k": 1}).status_code == 200
    assert client.get("/api/search", params={"q": "Alpha", "k": 50}).status_code == 200


# ------------------------------------------------------------------ GET /api/sources/{doc_id}


def test_source_is_the_file_exactly_as_stored(client, tiny_index):
    _index, s = tiny_index
    data = client.get("/api/sources/alpha-technopark").json()
    raw = (s.sources_dir / "alpha-technopark.txt").read_bytes().decode("utf-8")
    assert data["text"] == raw
    assert data["doc_id"] == "alpha-technopark" and data["title"] == "Technopark Alpha" and data["lang"] == "en"
    assert set(data) == {"doc_id", "title", "url", "lang", "date", "text"}


@pytest.mark.parametrize("path", [
    "/api/sources/nope", "/api/sources/..%2F..%2Fetc%2Fpasswd", "/api/sources/../../etc/passwd",
    "/api/sources//etc/passwd", "/api/sources/%2Fetc%2Fpasswd", "/api/sources/..", "/api/sources/%2e%2e",
    "/api/sources/alpha-technopark.txt", "/api/sources/..%2Fsources%2Falpha-technopark",
    "/api/sources/alpha-technopark%00", "/api/sources/" + "a" * 300,
])
def test_unknown_and_traversal_source_ids_are_404(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "root:" not in r.text


# ------------------------------------------------------------------ POST /api/feedback


def test_feedback_is_stored_and_a_second_rating_replaces_the_first(client, tmp_path):
    answer_id = client.post("/api/ask", json={"question": "When was Technopark Alpha founded?"}).json()["answer_id"]
    r = client.post("/api/feedback", json={"answer_id": answer_id, "rating": "up", "comment": " Exactly right "})
    assert r.status_code == 200 and r.json() == {"answer_id": answer_id, "rating": "up", "stored": True}
    row = _db(tmp_path).execute("SELECT rating, comment FROM feedback WHERE answer_id = ?", (answer_id,)).fetchone()
    assert tuple(row) == ("up", "Exactly right")
    assert client.post("/api/feedback", json={"answer_id": answer_id, "rating": "down"}).status_code == 200
    rows = _db(tmp_path).execute("SELECT rating, comment FROM feedback").fetchall()
    assert [tuple(r) for r in rows] == [("down", "Exactly right")]


def test_feedback_for_an_unknown_answer_is_404(client, tmp_path):
    r = client.post("/api/feedback", json={"answer_id": "0" * 32, "rating": "up"})
    assert r.status_code == 404 and r.json()["detail"] == "unknown answer_id"
    assert _db(tmp_path).execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 0


@pytest.mark.parametrize("body", [
    {"answer_id": "x", "rating": "meh"}, {"answer_id": "x", "rating": 1}, {"answer_id": "x"}, {"rating": "up"},
    {"answer_id": "", "rating": "up"}, {"answer_id": "x" * 65, "rating": "up"}, {"answer_id": 5, "rating": "up"},
    {"answer_id": "x", "rating": "up", "comment": "c" * 2001}, {"answer_id": "x", "rating": "up", "comment": "a\x00"},
    {"answer_id": "x", "rating": "up", "stars": 5},
])
def test_bad_feedback_is_422(client, body):
    assert client.post("/api/feedback", json=body).status_code == 422


def test_feedback_comment_limit_is_inclusive(client):
    answer_id = client.post("/api/ask", json={"question": "Where is Technopark Alpha?"}).json()["answer_id"]
    r = client.post("/api/feedback", json={"answer_id": answer_id, "rating": "down", "comment": "c\n" * 1000})
    assert r.status_code == 200


# ------------------------------------------------------------------ health, docs, pages


def test_not_ready_before_the_index_is_loaded(tiny_index, tmp_path):
    _index, s = tiny_index
    app = server.create_app(s.model_copy(update={"db_path": tmp_path / "qa.sqlite3"}))
    client = TestClient(app)  # no lifespan: nothing is loaded
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert client.post("/api/ask", json={"question": "When?"}).status_code == 503
    assert client.get("/api/sources/alpha-technopark").status_code == 503
    assert isinstance(server.app, type(app))  # the module-level app for `uvicorn server:app`


def test_ready_after_startup(client):
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready", "docs": 3, "chunks": r.json()["chunks"]}
    assert client.get("/healthz").status_code == 200


def test_openapi_and_docs_are_served_without_a_cdn(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/ask", "/api/search", "/api/sources/{doc_id}", "/api/feedback", "/healthz", "/readyz"} <= set(spec["paths"])
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn" not in html.lower() and "/static-offline-docs/" in html
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_demo_page_and_widget_assets_with_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                      "frame-ancestors 'none'", "object-src 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert '<script src="/widget.js"' in page.text and "http" not in page.text.split("<body")[0].replace(
        'name="viewport"', "")
    js = client.get("/widget.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and "tqa-root" in js.text
    css = client.get("/widget.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for r in (page, js, css, client.get("/api/sources/alpha-technopark")):
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert client.get("/api/sources/alpha-technopark").headers["cache-control"] == "no-store"


def test_cors_only_for_configured_origins(make_client):
    client = make_client(cors_origins=["https://partner.example"])
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = client.options("/api/ask", headers={"Origin": "https://partner.example", **pre})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://partner.example"
    other = client.options("/api/ask", headers={"Origin": "https://other.example", **pre})
    assert "access-control-allow-origin" not in other.headers


# ------------------------------------------------------------------ the store and `qa report`


def test_question_key_ignores_case_spacing_and_final_punctuation():
    assert question_key("  Когда  открыли ТЕХНОПОЛИС?? ") == question_key("когда открыли технополис") == \
        "когда открыли технополис"


def test_store_reports_most_frequent_first(tmp_path):
    with Store(tmp_path / "r.sqlite3") as store:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        asked = [("When was Alpha founded?", False), ("when was alpha founded", False), ("WHEN was Alpha founded?!", True),
                 ("Рецепт борща?", True), ("рецепт борща", True), ("Where is Alpha?", False)]
        for n, (q, abstained) in enumerate(asked):
            store.log_question(answer_id=f"a{n}", question=q, lang="ru" if "борщ" in q else "en", abstained=abstained,
                               confidence=0.1 if abstained else 0.8, latency_ms=5.0,
                               answer=None if abstained else "It was founded in 2012.",
                               short_answer=None if abstained else "2012",
                               doc_id=None if abstained else "alpha", asked_at=f"2026-01-0{n + 1}T00:00:00Z")
        assert store.add_feedback("a0", "up") and store.add_feedback("a1", "down", "wrong year")
        assert store.add_feedback("a5", "up")
        assert not store.add_feedback("missing", "up")
        with pytest.raises(ValueError):
            store.add_feedback("a0", "sideways")
        report = store.report(limit=10)
    assert report["totals"] == {"questions": 6, "unanswered": 3, "up": 2, "down": 1}
    frequent = report["frequent"]
    assert [(r["question"], r["asked"], r["unanswered"]) for r in frequent] == [
        ("WHEN was Alpha founded?!", 3, 1), ("рецепт борща", 2, 2), ("Where is Alpha?", 1, 0)]
    assert frequent[2]["last_answer"] == "2012" and frequent[2]["last_doc_id"] == "alpha"
    assert [(r["question"], r["asked"], r["lang"]) for r in report["unanswered"]] == [
        ("рецепт борща", 2, "ru"), ("WHEN was Alpha founded?!", 1, "en")]
    assert [(r["question"], r["up"], r["down"], r["comments"]) for r in report["feedback"]] == [
        ("WHEN was Alpha founded?!", 1, 1, ["wrong year"]), ("Where is Alpha?", 1, 0, [])]
    json.dumps(report)  # JSON-ready


def test_store_limit_and_concurrent_writers(tmp_path):
    path = tmp_path / "c.sqlite3"
    with Store(path) as a, Store(path) as b:  # two connections, as the server and `qa report` would be
        def write(store: Store, prefix: str) -> None:
            for i in range(30):
                store.log_question(answer_id=f"{prefix}{i}", question=f"q{i % 7}", lang="en", abstained=False,
                                   confidence=0.5, latency_ms=1.0)

        threads = [threading.Thread(target=write, args=(s, p)) for s, p in ((a, "a"), (b, "b"), (a, "c"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert a.totals()["questions"] == 90
        assert len(b.frequent_questions(limit=3)) == 3


def test_qa_report_text_and_json(client, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("QA_DB_PATH", str(tmp_path / "qa.sqlite3"))
    ok = client.post("/api/ask", json={"question": "When was Technopark Alpha founded?"}).json()
    client.post("/api/ask", json={"question": "when was technopark alpha founded"})
    client.post("/api/feedback", json={"answer_id": ok["answer_id"], "rating": "up", "comment": "useful"})
    assert cli.main(["report", "--json", "--limit", "5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["questions"] == 2 and report["frequent"][0]["asked"] == 2
    assert report["feedback"][0]["comments"] == ["useful"]
    assert cli.main(["report"]) == 0
    text = capsys.readouterr().out
    assert "Most frequent questions" in text and "Unanswered questions" in text and "(none)" in text
    assert '"useful"' in text and "March 2012" in text


def test_qa_report_without_a_database(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("QA_DB_PATH", str(tmp_path / "none.sqlite3"))
    assert cli.main(["report"]) == 1
    assert "no question log" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite3").exists()


def test_qa_serve_loads_once_and_runs_the_app(monkeypatch, tiny_index, encoder, capsys):
    import uvicorn

    index, s = tiny_index
    seen = {}
    monkeypatch.setattr(server, "load_service", lambda settings, progress=None: QAService(index, encoder, s))
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.update(config=self.config))
    assert cli.main(["serve", "--port", "8123", "--host", "127.0.0.1"]) == 0
    config = seen["config"]
    assert config.port == 8123 and config.host == "127.0.0.1" and config.app.state.service is not None
    with pytest.raises(SystemExit):
        cli.main(["serve", "--port", "70000"])


def test_qa_serve_workers_checks_the_index_once_then_runs_the_workers(monkeypatch, capsys):
    import qa.cli
    from qa import workers
    from qa.index import MissingIndexError

    calls: list[str] = []

    def missing(settings):
        calls.append("open")
        if "build" not in calls:
            raise MissingIndexError("no index at x (run `qa build`)")

    monkeypatch.setattr(qa.cli, "open_index", missing)
    monkeypatch.setattr(qa.cli, "build_on_disk", lambda settings, encoder=None, progress=None: calls.append("build"))
    monkeypatch.setattr(workers, "run", lambda host, port, n, **kw: calls.append(("run", (host, port, n), kw)) or 0)
    # a copy of the environment: the command sets QA_CPU_SLOTS for the workers it starts
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != "QA_CPU_SLOTS"})
    monkeypatch.setattr("qa.embedding.default_threads", lambda: 2)
    assert cli.main(["serve", "--port", "8125", "--workers", "2"]) == 0
    assert calls[:2] == ["open", "build"]
    what, where, _kw = calls[-1]
    # qa/workers.py: every worker process loads the app (and the index) itself
    assert what == "run" and where == ("127.0.0.1", 8125, 2)
    assert os.environ["QA_CPU_SLOTS"] == "1"  # one question at a time a worker on 2 cores
    assert "Open http://127.0.0.1:8125/" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["serve", "--workers", "0"])

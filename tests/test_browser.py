"""The chat widget in a real browser: Debian's Chromium driven by Playwright, against the
real server (uvicorn in a subprocess) over the bundled sources and their index.

Outside CI these tests are skipped when Chromium or Playwright is missing; with CI=true
they fail instead (``.ci/run`` installs Chromium). Playwright's own browser download is
never used. Screenshots go to a temporary folder, or to ``$QA_SCREENSHOT_DIR``
(``make screenshots`` writes docs/widget-en.png and docs/widget-ru.png).

The page runs under the server's strict Content-Security-Policy, which blocks the
``eval`` behind ``page.wait_for_function``: waits use selectors and locators instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qa.config import PROJECT_ROOT
from tests import live as helpers
from tests.live import ANSWER_MS, MANY_VISITORS, Page, chromium, require_browser, serve

EN_QUESTION = "Where is Technopolis Moscow located?"
RU_QUESTION = "Когда был основан Технополис Москва?"
EN_OFF_TOPIC = "What is the recipe for borscht?"
RU_OFF_TOPIC = "Какой рецепт борща?"
# The server runs with the default abstention threshold (Settings.abstain_threshold, from
# the confidence fit): the two off-topic questions are declined (confidence 0.14 / 0.04 with
# `qa ask --json`), the two on-topic ones answered (0.92 / 0.99).


# A source whose text, title and link try to run script in the widget and the source viewer.
XSS_PAYLOADS = ['<script>window.__xss = "script"</script>', '<img src=x onerror="window.__xss = \'img\'">',
                '<a href="javascript:window.__xss = \'link\'">the gate map</a>',
                '<svg onload="window.__xss = \'svg\'"></svg>', '"><iframe srcdoc="<script>parent.__xss=1</script>">']
XSS_TEXT = ("The Probe Laboratory of Technopark Alpha opened in April 2019 " + XSS_PAYLOADS[0] + " next to the north gate "
            + XSS_PAYLOADS[1] + ".\n\nVisitors find it with " + XSS_PAYLOADS[2] + " and " + XSS_PAYLOADS[3]
            + XSS_PAYLOADS[4] + ".\n")
XSS_META = {"title": 'Probe <img src=x onerror="window.__xss = \'title\'"> notes', "lang": "en",
            "url": "javascript:window.__xss = 'url'", "publisher": "<b>test</b>"}
XSS_QUESTION = "When did the Probe Laboratory open?"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The server over the bundled sources and their index."""
    require_browser()
    with serve(tmp_path_factory.mktemp("live"), MANY_VISITORS) as live:
        yield live


@pytest.fixture(scope="module")
def xss_server(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The server over the tiny test corpus plus a source full of markup and script."""
    require_browser()
    tmp = tmp_path_factory.mktemp("xss")
    sources = tmp / "sources"
    shutil.copytree(PROJECT_ROOT / "tests" / "corpus", sources)
    (sources / "xss-probe.txt").write_text(XSS_TEXT, encoding="utf-8")
    (sources / "xss-probe.meta.json").write_text(json.dumps(XSS_META), encoding="utf-8")
    env = {"QA_SOURCES_DIR": str(sources), "QA_INDEX_DIR": str(tmp / "index"), "QA_CHUNK_SIZE": "300",
           "QA_CHUNK_OVERLAP": "60", "QA_ABSTAIN_THRESHOLD": "0", **MANY_VISITORS}
    with serve(tmp, env) as live:
        yield live


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory, xss_server) -> Iterator[dict[str, Any]]:
    """A server with the default burst but one request a minute after it, over the index
    the XSS server built (so nothing is built again)."""
    tmp = tmp_path_factory.mktemp("strict")
    xss = xss_server["db"].parent
    env = {"QA_SOURCES_DIR": str(xss / "sources"), "QA_INDEX_DIR": str(xss / "index"), "QA_CHUNK_SIZE": "300",
           "QA_CHUNK_OVERLAP": "60", "QA_ABSTAIN_THRESHOLD": "0", "QA_RATE_LIMIT_PER_MINUTE": "1",
           "QA_RATE_LIMIT_BURST": "2"}
    with serve(tmp, env) as live:
        yield live


@pytest.fixture(scope="module")
def browser(live_server) -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = os.environ.get("QA_SCREENSHOT_DIR")
    path = Path(out) if out else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture()
def page(browser, live_server) -> Iterator[Page]:
    p = Page(browser, live_server["url"])
    yield p
    p.close()
    # The widget runs under the page's strict CSP: any violation or script error is a bug.
    assert not p.errors, p.errors


def _feedback_rows(db: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT answer_id, rating FROM feedback").fetchall()


def _check_answer_and_source(p: Page, data: dict[str, Any], lang: str) -> None:
    """The answer is shown with its citations; the first one opens the source viewer with
    exactly the cited text highlighted."""
    assert not data["abstained"], data
    msg = p.last_bot()
    assert msg.get_attribute("lang") == lang and msg.get_attribute("data-answer-id") == data["answer_id"]
    assert p.page.get_attribute("#tqa-root", "lang") == lang
    assert msg.locator(".tqa-answer").text_content() == data["answer"]
    if data["short_answer"]:
        assert msg.locator("mark.tqa-short").text_content() == data["short_answer"]
    cites = msg.locator(".tqa-cites .tqa-cite")
    assert cites.count() == len(data["citations"]) >= 1
    first = data["citations"][0]
    assert cites.first.get_attribute("data-doc-id") == first["doc_id"]
    assert first["title"] in cites.first.text_content()

    cites.first.click()
    mark = p.page.locator(".tqa-viewer mark.tqa-highlight")
    mark.wait_for(timeout=ANSWER_MS)
    assert mark.text_content() == first["quote"]
    assert p.page.locator(".tqa-viewer-title").text_content() == first["title"]
    # the whole source is shown around the mark, exactly as the API serves it
    assert data["answer"] in first["quote"]
    assert mark.is_visible()
    p.page.keyboard.press("Escape")
    p.page.wait_for_selector(".tqa-viewer", state="detached")
    assert p.page.evaluate("document.activeElement.classList.contains('tqa-cite')")


def _thumbs_up(p: Page, data: dict[str, Any], db: Path, thanks: str) -> None:
    msg = p.last_bot()
    with p.page.expect_response(lambda r: r.url.endswith("/api/feedback")) as resp:
        msg.locator(".tqa-fb-up").click()
    assert resp.value.status == 200
    msg.locator(".tqa-fb-status", has_text=thanks).wait_for()
    assert msg.locator(".tqa-fb-up").get_attribute("aria-pressed") == "true"
    assert (data["answer_id"], "up") in _feedback_rows(db)


def test_english_question_answer_citation_source_and_feedback(page, live_server, shots):
    page.open()
    data = page.ask(EN_QUESTION)
    assert data["lang"] == "en"
    page.page.screenshot(path=str(shots / "widget-en.png"))
    _check_answer_and_source(page, data, "en")
    _thumbs_up(page, data, live_server["db"], "Thanks for the feedback!")


def test_russian_question_answer_citation_source_and_feedback(page, live_server, shots):
    page.open()
    data = page.ask(RU_QUESTION)
    assert data["lang"] == "ru"
    page.page.screenshot(path=str(shots / "widget-ru.png"))
    _check_answer_and_source(page, data, "ru")
    # the interface follows the question's language
    assert page.page.get_attribute(".tqa-input", "placeholder") == "Спросите о Технополисе…"
    _thumbs_up(page, data, live_server["db"], "Спасибо за отзыв!")


def test_off_topic_questions_are_declined_in_their_language(page, live_server):
    page.open()
    en = page.ask(EN_OFF_TOPIC)
    assert en["abstained"] and en["lang"] == "en", en
    declined = page.last_bot().locator(".tqa-declined")
    assert declined.text_content() == en["message"] and en["message"].startswith("I could not find")
    assert page.last_bot().get_attribute("lang") == "en"
    assert page.last_bot().locator(".tqa-answer").count() == 0

    ru = page.ask(RU_OFF_TOPIC)
    assert ru["abstained"] and ru["lang"] == "ru", ru
    assert page.last_bot().locator(".tqa-declined").text_content() == ru["message"]
    assert "источниках" in ru["message"] and page.last_bot().get_attribute("lang") == "ru"
    with contextlib.closing(sqlite3.connect(live_server["db"])) as conn:
        logged = conn.execute("SELECT abstained FROM questions WHERE answer_id IN (?, ?)",
                              (en["answer_id"], ru["answer_id"])).fetchall()
    assert logged == [(1,), (1,)]


def test_keyboard_only(page):
    p = page.page
    for _ in range(15):  # the demo page has no other controls before the launcher, but do not rely on it
        p.keyboard.press("Tab")
        if p.evaluate("document.activeElement.classList.contains('tqa-launcher')"):
            break
    else:
        pytest.fail("Tab never reached the chat launcher")
    p.keyboard.press("Enter")
    p.wait_for_selector(".tqa-panel", state="visible")
    assert p.evaluate("document.activeElement.classList.contains('tqa-input')")
    assert p.get_attribute(".tqa-launcher", "aria-expanded") == "true"
    data = page.ask(EN_QUESTION, keyboard=True)
    assert not data["abstained"] and page.last_bot().locator(".tqa-answer").text_content() == data["answer"]
    assert p.input_value(".tqa-input") == ""
    p.keyboard.press("Escape")
    p.wait_for_selector(".tqa-panel", state="hidden")
    assert p.evaluate("document.activeElement.classList.contains('tqa-launcher')")


def test_a_rejected_question_shows_the_server_message_and_returns_to_the_input(page):
    p = page.page
    page.open()
    too_long = "Technopolis " * 100  # 1200 characters: above Settings.max_question_chars
    with p.expect_response(lambda r: r.url.endswith("/api/ask")) as resp:
        p.fill(".tqa-input", too_long)
        p.press(".tqa-input", "Enter")
    assert resp.value.status == 422
    error = p.locator(".tqa-error")
    error.wait_for()
    assert "too long" in error.locator(".tqa-error-detail-text").text_content()
    assert error.locator(".tqa-retry").count() == 0
    assert p.input_value(".tqa-input") == too_long.strip()
    # the browser reports the 422 on the console; nothing else may be there
    page.errors[:] = [e for e in page.errors if "status of 422" not in e]


def test_narrow_screen_has_no_horizontal_scroll(browser, live_server):
    p = Page(browser, live_server["url"], width=360, height=740)
    try:
        p.open()
        data = p.ask(RU_QUESTION)
        assert not data["abstained"]
        widths = p.page.evaluate(
            "[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth,"
            " document.querySelector('.tqa-panel').getBoundingClientRect().right]")
        doc_w, body_w, inner, panel_right = widths
        assert doc_w <= inner and body_w <= inner and panel_right <= inner, widths
        p.last_bot().locator(".tqa-cites .tqa-cite").first.click()
        p.page.locator(".tqa-viewer mark.tqa-highlight").wait_for()
        right = p.page.evaluate("document.querySelector('.tqa-viewer').getBoundingClientRect().right")
        assert right <= inner and p.page.evaluate("document.documentElement.scrollWidth") <= inner
        assert not p.errors, p.errors
    finally:
        p.close()


def test_the_page_isserved_with_its_csp(live_server):
    with urllib.request.urlopen(live_server["url"] + "/") as r:
        csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    with urllib.request.urlopen(live_server["url"] + "/api/sources/technopolis-moscow-encyclopedia") as r:
        text = json.loads(r.read())["text"]
    raw = (PROJECT_ROOT / "sources" / "technopolis-moscow-encyclopedia.txt").read_bytes().decode("utf-8")
    assert text == raw


def test_missing_chromium_fails_in_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setattr(helpers, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setattr(helpers, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="cannot run in CI"):
        require_browser()
    monkeypatch.setattr(helpers, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception):
        require_browser()


def _no_script_ran(p: Page, dialogs: list[str]) -> None:
    assert p.page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []
    root = p.page.locator("#tqa-root")
    for tag in ("script", "img", "iframe", "b", "svg[onload]"):
        assert root.locator(tag).count() == 0, tag  # markup from the source never becomes elements
    handlers = p.page.evaluate("[...document.querySelectorAll('*')].flatMap(e => [...e.attributes])"
                               ".filter(a => a.name.startsWith('on')).map(a => a.name)")
    assert handlers == []
    assert p.page.locator('a[href^="javascript:"]').count() == 0


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["page-csp", "no-csp"])
def test_markup_in_sources_and_questions_is_shown_as_text_and_never_runs(browser, xss_server, bypass_csp):
    """With the demo page's CSP, and without one (a partner page may have none): the widget
    itself never turns text into markup."""
    p = Page(browser, xss_server["url"], bypass_csp=bypass_csp)
    dialogs: list[str] = []
    p.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        p.open()
        question = XSS_QUESTION + ' <img src=x onerror="window.__xss = \'question\'">'
        data = p.ask(question)
        assert not data["abstained"] and data["citations"][0]["doc_id"] == "xss-probe", data
        assert "<script>" in data["answer"]
        # the user's message, the answer and the citation title, character for character
        assert p.page.locator(".tqa-msg-user").last.text_content() == question
        assert p.last_bot().locator(".tqa-answer").text_content() == data["answer"]
        assert XSS_META["title"] in p.last_bot().locator(".tqa-cite").first.text_content()
        _no_script_ran(p, dialogs)

        p.last_bot().locator(".tqa-cite").first.click()
        mark = p.page.locator(".tqa-viewer mark.tqa-highlight")
        mark.wait_for(timeout=ANSWER_MS)
        assert mark.text_content() == data["citations"][0]["quote"]
        assert p.page.locator(".tqa-viewer-title").text_content() == XSS_META["title"]
        assert p.page.locator(".tqa-viewer-text").text_content() == XSS_TEXT
        assert p.page.locator(".tqa-viewer-link").count() == 0  # a javascript: URL is not a link
        _no_script_ran(p, dialogs)
        p.page.keyboard.press("Escape")
        p.page.reload()  # the conversation comes back from sessionStorage: still text
        p.page.wait_for_selector("#tqa-root .tqa-msg-bot")
        assert p.last_bot().locator(".tqa-answer").text_content() == data["answer"]
        _no_script_ran(p, dialogs)
        # a request for "x" would mean an <img src=x> was made somewhere
        assert not [e for e in p.errors if "/x" in e or "Content Security Policy" in e], p.errors
    finally:
        p.close()


def test_a_visitor_over_the_rate_limit_is_told_when_to_try_again(browser, strict_server):
    p = Page(browser, strict_server["url"])
    try:
        p.open()
        assert not p.ask("When was Technopark Alpha founded?")["abstained"]
        p.ask("Where is Technopark Alpha?")
        with p.page.expect_response(lambda r: r.url.endswith("/api/ask")) as resp:
            p.page.fill(".tqa-input", "And when was it founded?")
            p.page.press(".tqa-input", "Enter")
        assert resp.value.status == 429
        seconds = int(resp.value.headers["retry-after"])
        assert 1 <= seconds <= 60
        error = p.page.locator(".tqa-error")
        error.wait_for()
        assert f"Please try again in {seconds} s." in error.locator(".tqa-error-text").text_content()
        # the browser reports the 429 on the console; nothing else may be there
        assert not [e for e in p.errors if "status of 429" not in e], p.errors
    finally:
        p.close()

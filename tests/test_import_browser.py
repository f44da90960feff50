"""The widget shows the page of a citation into a source imported from a PDF: in the
citation list ("p. N") and in the source viewer ("Quoted from p. N"), against the real
server over the tiny corpus plus a PDF made here (Chromium driven by Playwright, as in
tests/live.py, whose helpers this uses)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from qa.config import PROJECT_ROOT, Settings
from qa.importing import prepare, write_source
from tests.documents import make_pdf
from tests.live import ANSWER_MS, MANY_VISITORS, Page, chromium, require_browser, serve
from tests.test_import import PDF_PAGES

QUESTION = "How many resident companies did Technopark Omega have in 2020?"


@pytest.fixture(scope="module")
def pdf_server(tmp_path_factory) -> Iterator[dict[str, Any]]:
    require_browser()
    tmp = tmp_path_factory.mktemp("pdf")
    sources = tmp / "sources"
    shutil.copytree(PROJECT_ROOT / "tests" / "corpus", sources)
    settings = Settings(sources_dir=sources, index_dir=tmp / "index")
    write_source(prepare(make_pdf(PDF_PAGES, title="Omega in figures"), "omega-figures.pdf", settings), sources)
    env = {"QA_SOURCES_DIR": str(sources), "QA_INDEX_DIR": str(tmp / "index"), "QA_CHUNK_SIZE": "300",
           "QA_CHUNK_OVERLAP": "60", "QA_ABSTAIN_THRESHOLD": "0", **MANY_VISITORS}
    with serve(tmp, env) as live:
        yield live


@pytest.fixture(scope="module")
def pdf_browser(pdf_server) -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.mark.parametrize(("locale", "question", "page", "in_list", "in_viewer"), [
    ("en-US", QUESTION, 2, "p. 2", "Quoted from p. 2"),
    ("ru-RU", "Когда технопарк «Омега» открыл центр коллективного пользования?", 3, "с. 3", "Цитата со с. 3"),
])
def test_a_pdf_citation_shows_its_page_in_the_list_and_the_viewer(pdf_browser, pdf_server, locale, question, page,
                                                                    in_list, in_viewer):
    p = Page(pdf_browser, pdf_server["url"], locale=locale)
    try:
        p.open()
        data = p.ask(question)
        first = data["citations"][0]
        assert first["doc_id"] == "omega-figures" and first["page"] == page, data
        cite = p.last_bot().locator(".tqa-cites .tqa-cite").first
        assert cite.locator(".tqa-cite-page").text_content() == in_list
        cite.click()
        mark = p.page.locator(".tqa-viewer mark.tqa-highlight")
        mark.wait_for(timeout=ANSWER_MS)
        assert mark.text_content() == first["quote"]
        assert p.page.locator(".tqa-viewer .tqa-viewer-page").text_content() == in_viewer
        p.page.keyboard.press("Escape")
        p.page.wait_for_selector(".tqa-viewer", state="detached")
        # a citation into a source without pages shows none
        data = p.ask("When was Technopark Alpha founded?")
        assert data["citations"][0]["page"] is None
        assert p.last_bot().locator(".tqa-cite-page").count() == 0
        assert not p.errors, p.errors
    finally:
        p.close()

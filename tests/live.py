"""What the tests that run the real server share: uvicorn in a subprocess on a free loopback
port (``serve``), and Debian's Chromium driven by Playwright (``chromium``, ``Page``).

Outside CI the browser tests are skipped when Chromium or Playwright is missing; with CI=true
they fail instead (``.ci/run`` installs Chromium). Playwright's own browser download is
never used.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qa.config import PROJECT_ROOT
from qa.workers import free_port

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# The index is built on the server's first start when it is missing (a clean clone).
STARTUP_SECONDS = 600
ANSWER_MS = 60_000

# Every page of these tests comes from 127.0.0.1: one client to the rate limit, which is
# for one visitor (60 a minute by default), not for a test module full of them.
MANY_VISITORS = {"QA_RATE_LIMIT_PER_MINUTE": "6000", "QA_RATE_LIMIT_BURST": "200"}


def require_browser() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium fonts-dejavu-core; `make browser` does it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing (pip install -e '.[dev]')"
    if problem:
        if IN_CI:
            pytest.fail(f"browser tests cannot run in CI: {problem}", pytrace=False)
        pytest.skip(problem)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


@contextlib.contextmanager
def serve(tmp: Path, env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """``uvicorn server:app`` on a free loopback port with a private question database."""
    db = tmp / "qa.sqlite3"
    port = free_port()
    full_env = {**os.environ, "QA_DB_PATH": str(db), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=PROJECT_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while http_status(f"{base}/readyz") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not become ready:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield {"url": base, "db": db, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, driven by Playwright (its own browser download is never used)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield b
        b.close()


class Page:
    """One fresh browser context on the demo page, recording console errors (CSP reports among them)."""

    def __init__(self, browser: Any, base: str, width: int = 1100, height: int = 800, locale: str = "en-US",
                 bypass_csp: bool = False) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height}, locale=locale,
                                           bypass_csp=bypass_csp)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(base + "/")
        self.page.wait_for_selector("#tqa-root .tqa-launcher")

    def open(self) -> None:
        self.page.click(".tqa-launcher")
        self.page.wait_for_selector(".tqa-panel", state="visible")

    def ask(self, question: str, *, keyboard: bool = False) -> dict[str, Any]:
        """Ask through the input box; returns the /api/ask JSON the widget received."""
        bots = self.page.locator(".tqa-msg-bot").count()
        with self.page.expect_response(lambda r: r.url.endswith("/api/ask"), timeout=ANSWER_MS) as resp:
            if keyboard:
                self.page.keyboard.type(question)
                self.page.keyboard.press("Enter")
            else:
                self.page.fill(".tqa-input", question)
                self.page.press(".tqa-input", "Enter")
        assert resp.value.status == 200, resp.value.text()
        data = resp.value.json()
        self.page.locator(".tqa-msg-bot").nth(bots).wait_for(timeout=ANSWER_MS)
        return data

    def last_bot(self) -> Any:
        return self.page.locator(".tqa-msg-bot").last

    def close(self) -> None:
        self.context.close()

"""README.md stays true: every ``qa …`` command and every ``curl …`` example in its fenced
shell blocks runs, in the README's order, against a real server (``uvicorn server:app`` on a
free loopback port) over a private copy of the bundled sources, and the test fails when one
exits non-zero or gets an HTTP status >= 400 (unless the example's comment says
``# expect <status>``).

What the test changes in a command, and why:
- ``http://127.0.0.1:8000`` becomes the test server's address; ``$QA_ADMIN_TOKEN`` is the
  test server's token (set in the commands' environment);
- ``ANSWER_ID`` becomes the ``answer_id`` of the last ``/api/ask`` reply, as a reader would
  copy it;
- ``curl`` gets ``-sS -o FILE -w '%{http_code}'`` so its status can be checked;
- ``qa`` is this checkout's ``python -m qa.cli``; ``qa eval`` gets ``--limit 2`` when it has
  no ``--limit`` (the full sets take minutes; the command line is what is checked);
- the files the examples name (``SAMPLE_FILES``) are made in the commands' working folder.

Commands that change state run against copies: the server and the CLI each have their own
copy of ``sources/`` and their own index (so a server's background reindex never holds the
build lock the CLI's ``qa add`` needs); the question log is shared, so ``qa report`` reads
what the ``curl`` examples asked. After an example that adds or removes a source, the test
waits for the server's reindex to finish, as the README says to check it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from qa.config import PROJECT_ROOT, Settings
from tests.documents import NEWS_EN, make_pdf
from tests.live import serve

README = PROJECT_ROOT / "README.md"
README_SERVER = "http://127.0.0.1:8000"
TOKEN = "readme-test-token"
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\n(.*?)^```", re.S | re.M)
COMMAND = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(qa|curl)\s")
EXPECT = re.compile(r"#.*\bexpect (\d{3})\b")
# Commands left out, each with the reason; keep this short: a command belongs here only
# when it cannot run in a test (none today: `qa eval` runs with --limit instead).
SKIPPED: dict[str, str] = {}
COMMAND_TIMEOUT_S = 300


def _report_pdf() -> bytes:
    return make_pdf([["Technopark Omega opened its wind tunnel in March 2024.",
                      "The tunnel tests drones and car parts for the park's tenants."],
                     ["Omega's residents employ 1,200 engineers."]], title="Annual report")


# The files the README's examples add, made for the test: name -> bytes.
SAMPLE_FILES = {"news.html": lambda: NEWS_EN.read_bytes(), "report.pdf": _report_pdf}


def readme_commands(text: str) -> list[str]:
    """The ``qa`` and ``curl`` commands of the fenced shell blocks, in order. A command
    continued with a trailing backslash keeps its lines as written, so bash reads them as a
    reader's shell would (a backslash inside quotes is no continuation there)."""
    found = []
    for block in SHELL_BLOCK.findall(text):
        lines = block.splitlines()
        while lines:
            command = [lines.pop(0)]
            while command[-1].endswith("\\") and lines:
                command.append(lines.pop(0))
            text_ = "\n".join(command).strip()
            if COMMAND.match(text_) and text_ not in SKIPPED:
                found.append(text_)
    return found


def test_the_readme_has_commands_to_check() -> None:
    """The extraction itself: a README rewritten so that no command is found any more
    would otherwise pass the test below unchecked."""
    commands = readme_commands(README.read_text(encoding="utf-8"))
    kinds = [COMMAND.match(c).group(1) for c in commands]  # type: ignore[union-attr]
    assert kinds.count("curl") >= 8 and kinds.count("qa") >= 5, commands
    for needed in ("/api/ask", "/api/search", "/api/sources/", "/api/feedback", "/api/admin/sources"):
        assert any(needed in c for c in commands if c.startswith("curl")), needed
    for sub in ("ask", "search", "add", "eval", "report"):
        assert any(re.search(rf"\bqa {sub}\b", c) for c in commands), sub


def test_the_generated_blocks_are_what_their_generators_write(tmp_path) -> None:
    """The eval:start / bench:start blocks are found by `make eval-report` (qa eval --readme)
    and `make bench` (bench/run.py --readme), and hold what they write from the results
    committed beside them (eval/metrics.json, bench/results/run.json)."""
    from qa.report import HEADLINE_MARKERS, headline, replace_block

    spec = importlib.util.spec_from_file_location("bench_run", PROJECT_ROOT / "bench" / "run.py")
    assert spec and spec.loader
    bench_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_run)
    copy = tmp_path / "README.md"
    shutil.copy(README, copy)
    replace_block(copy, HEADLINE_MARKERS, headline(json.loads((PROJECT_ROOT / "eval" / "metrics.json").read_text())))
    run = json.loads((PROJECT_ROOT / "bench" / "results" / "run.json").read_text())
    replace_block(copy, bench_run.BENCH_MARKERS, bench_run.headline(run))
    assert copy.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def bench(tmp_path_factory, encoder) -> Iterator[dict[str, Any]]:
    """A server and a CLI over their own copies of the bundled sources, indexes built here
    once (the session's encoder), one question log, and a working folder for the commands."""
    from qa.index import build_on_disk

    root = tmp_path_factory.mktemp("readme")
    envs = {}
    for who in ("server", "cli"):
        sources = root / who / "sources"
        shutil.copytree(PROJECT_ROOT / "sources", sources, ignore=shutil.ignore_patterns("README.md"))
        build_on_disk(Settings(sources_dir=sources, index_dir=root / who / "index"), encoder=encoder)
        envs[who] = {"QA_SOURCES_DIR": str(sources), "QA_INDEX_DIR": str(root / who / "index")}
    work = root / "work"
    work.mkdir()
    (work / "eval").symlink_to(PROJECT_ROOT / "eval")  # read only: no example writes --out
    for name, make in SAMPLE_FILES.items():
        (work / name).write_bytes(make())
    bin_dir = root / "bin"
    bin_dir.mkdir()
    qa = bin_dir / "qa"
    qa.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m qa.cli "$@"\n', encoding="utf-8")
    qa.chmod(0o755)
    # no rate limit: the test polls the reindex state between examples from one address
    server_env = {**envs["server"], "QA_ADMIN_TOKEN": TOKEN, "QA_RATE_LIMIT_PER_MINUTE": "0"}
    with serve(root / "server", server_env) as live:
        env = {**os.environ, **envs["cli"], "QA_DB_PATH": str(live["db"]), "QA_ADMIN_TOKEN": TOKEN,
               "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(PROJECT_ROOT),
               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        yield {"url": live["url"], "log": live["log"], "env": env, "work": work}


def _wait_for_reindex(url: str) -> None:
    req = urllib.request.Request(f"{url}/api/admin/reindex", headers={"Authorization": f"Bearer {TOKEN}"})
    deadline = time.monotonic() + COMMAND_TIMEOUT_S
    while True:
        with urllib.request.urlopen(req, timeout=10) as r:
            state = json.loads(r.read())
        if state["state"] != "running":
            assert state["state"] in ("idle", "succeeded"), state
            return
        assert time.monotonic() < deadline, state
        time.sleep(0.5)


def _run(command: str, bench: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=bench["work"], env=bench["env"], capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT_S)


def test_every_readme_command_runs(bench: dict[str, Any]) -> None:
    answer_id = None
    body = bench["work"] / "body.out"
    for line in readme_commands(README.read_text(encoding="utf-8")):
        command = line.replace(README_SERVER, bench["url"])
        expected = EXPECT.search(line)
        if line.startswith("curl"):
            if "ANSWER_ID" in command:
                assert answer_id, f"no /api/ask reply before {line!r}"
                command = command.replace("ANSWER_ID", answer_id)
            command = f"curl -sS -o {shlex.quote(str(body))} -w '%{{http_code}}'" + command[len("curl"):]
        elif re.search(r"\bqa eval\b", command) and "--limit" not in command:
            command = re.sub(r"\bqa eval\b", "qa eval --limit 2", command)
        done = _run(command, bench)
        assert done.returncode == 0, (f"README command failed (exit {done.returncode}): {line}\n"
                                      f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-3000:]}")
        if not line.startswith("curl"):
            continue
        status, reply = int(done.stdout.strip()), body.read_text(encoding="utf-8", errors="replace")
        if expected:
            assert status == int(expected.group(1)), f"{line}\n-> {status} {reply[:2000]}"
        else:
            assert status < 400, f"README example got HTTP {status}: {line}\n{reply[:2000]}"
        if "/api/ask" in line:
            answer_id = json.loads(reply)["answer_id"]
        if "/api/admin/sources" in line and (" -F " in line or "DELETE" in line):
            _wait_for_reindex(bench["url"])

"""Bounded loopback load test of the HTTP API.

    python bench/load.py --clients 50 --duration 60 [--url http://127.0.0.1:8000] [--out FILE]

Without ``--url`` it starts ``uvicorn server:app`` on a free loopback port (a private
question log in a temporary directory; ``--env KEY=VALUE`` passes settings such as a
higher rate limit), waits for ``/readyz`` and stops the server afterwards. Each client
asks the project's eval-set questions (English and Russian, in a fixed order) one
after another, as fast as answers come back, for ``--duration`` seconds. Prints and
writes requests/s, latency p50/p95/p99 and errors by kind (any non-2xx status or
transport error counts), and for a server it started, that every answer has its row in
the question log. Only 127.0.0.1 is allowed as a target: the test is bounded
in clients and time, and it is not for other people's servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from qa.workers import free_port

ROOT = Path(__file__).resolve().parent.parent
MAX_CLIENTS = 200
MAX_DURATION = 300.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def questions() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "eval" / "technopolis.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [r["question"] for r in rows]


def start_server(env_overrides: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_DB_PATH": str(workdir / "load.sqlite3"), **env_overrides}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("the server was not ready within 180 s")


async def _ask(http: httpx.AsyncClient, path: str, question: str, latencies: list[float],
               errors: Counter[str]) -> dict[str, Any] | None:
    """One question: its answer, with the latency added to ``latencies``; or None, with
    the kind of failure (any non-2xx status or transport error) counted in ``errors``."""
    t0 = time.perf_counter()
    try:
        if path == "/api/search":
            r = await http.get(path, params={"q": question})
        else:
            r = await http.post(path, json={"question": question})
        if r.status_code >= 300:
            errors[f"HTTP {r.status_code}"] += 1
            return None
        body = r.json()
    except httpx.HTTPError as exc:
        errors[type(exc).__name__] += 1
        return None
    latencies.append((time.perf_counter() - t0) * 1000)
    return body


async def run(url: str, clients: int, duration: float, path: str = "/api/ask",
              answer_ids: set[str] | None = None) -> dict[str, object]:
    """One run; the ids of the answers received go into ``answer_ids``."""
    qs = questions()
    ids = answer_ids if answer_ids is not None else set()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    stop = time.monotonic() + duration
    # One connection pool a client, as with separate browsers: a pool shared by 50
    # clients costs httpx O(waiting requests) on every event, and the load generator then
    # took up to 0.85 of the 2 cores it shares with the server (0.3 this way)
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    https = [httpx.AsyncClient(base_url=url, limits=one, timeout=30.0) for _ in range(clients)]
    try:
        # one warm-up request, not counted (but logged by the server)
        warm = await _ask(https[0], path, qs[0], [], Counter())
        if warm is not None and "answer_id" in warm:
            ids.add(warm["answer_id"])

        async def client(n: int) -> None:
            i = n
            while time.monotonic() < stop:
                q = qs[i % len(qs)]
                i += clients
                body = await _ask(https[n], path, q, latencies, errors)
                if body is not None and "answer_id" in body:
                    ids.add(body["answer_id"])

        t_start = time.perf_counter()
        cpu_start = time.process_time()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - t_start
        # the load generator runs on the same cores as the server: what it takes from them
        client_cpu = time.process_time() - cpu_start
    finally:
        await asyncio.gather(*(h.aclose() for h in https))
    return {
        "clients": clients, "duration_s": round(elapsed, 1), "requests": len(latencies) + sum(errors.values()),
        "ok": len(latencies), "errors": dict(errors), "error_count": sum(errors.values()),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "client_cpu_cores": round(client_cpu / elapsed, 2),
        "latency_ms": {f"p{q}": round(percentile(latencies, q), 1) for q in (50, 95, 99)},
    }


async def run_open(url: str, rate: float, duration: float, path: str = "/api/ask",
                   max_in_flight: int = 50) -> dict[str, object]:
    """Open loop: a request every ``1/rate`` seconds whether or not the earlier ones were
    answered (visitors do not wait for each other), the eval questions in order. The
    latency of each is what a visitor sees at that arrival rate; the most in flight at
    once is reported too. Bounded: at most ``max_in_flight`` outstanding requests."""
    qs = questions()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    in_flight = peak = 0
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as http:
        await http.post(path, json={"question": qs[0]})  # warm-up, not counted

        async def one(q: str) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await _ask(http, path, q, latencies, errors)
            finally:
                in_flight -= 1

        tasks = []
        start = time.perf_counter()
        n = int(rate * duration)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= max_in_flight:
                errors["skipped (too many in flight)"] += 1
                continue
            tasks.append(asyncio.create_task(one(qs[i % len(qs)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "rate_per_s": rate, "duration_s": round(elapsed, 1), "requests": n, "ok": len(latencies),
        "errors": dict(errors), "error_count": sum(errors.values()), "max_in_flight": peak,
        "latency_ms": {f"p{q}": round(percentile(latencies, q), 1) for q in (50, 95, 99)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="an already running server on 127.0.0.1 (default: start one)")
    ap.add_argument("--clients", type=int, nargs="+", default=[50], help="concurrent clients (several: one run each)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per run")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="setting for the started server")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if any(not 1 <= c <= MAX_CLIENTS for c in args.clients) or not 0 < args.duration <= MAX_DURATION:
        ap.error(f"clients must be 1..{MAX_CLIENTS} and duration 0..{MAX_DURATION:.0f} s")
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost"):
        ap.error("only a loopback server (127.0.0.1) may be load-tested")
    overrides = dict(kv.split("=", 1) for kv in args.env)
    load_before = os.getloadavg()[0]
    lost = 0
    answer_ids: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = (None, args.url) if args.url else start_server(overrides, Path(tmp))
        try:
            results = []
            for c in args.clients:
                res = asyncio.run(run(url, c, args.duration, answer_ids=answer_ids))
                print(json.dumps(res, ensure_ascii=False), flush=True)
                results.append(res)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        if proc is not None:
            # Every answer the clients got has its row in the server's question log (which
            # also has the questions whose answers came after the client's deadline).
            with contextlib.closing(sqlite3.connect(Path(tmp) / "load.sqlite3")) as db:
                logged = {r[0] for r in db.execute("SELECT answer_id FROM questions")}
            lost = len(answer_ids - logged)
            check = {"answers_received": len(answer_ids), "rows_logged": len(logged), "answers_not_logged": lost}
            print(json.dumps(check), flush=True)
            results[-1]["log_check"] = check
    print(json.dumps({"loadavg_1min_before": round(load_before, 2), "loadavg_1min_after": round(os.getloadavg()[0], 2)}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"cpus": os.cpu_count(), "runs": results}, indent=1) + "\n", encoding="utf-8")
    return 1 if lost or any(r["error_count"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

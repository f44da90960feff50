"""The performance benchmark: every speed and memory figure (docs/performance.md), in one run.

    python bench/run.py [--quick] [--out bench/results/run.json] [--readme README.md]

Measures, on this machine:
1. embedding throughput on the XQuAD dev paragraphs (EN + RU) and question-encoding
   latency, the package's reference encoder and the project's (C++ tokenizer, per-piece
   tables, no sentence-transformers batching), both at BLAS threads = cores, in the same
   run; GFLOP/s of the model's arithmetic (from its weight shapes and the token counts,
   whether computed or looked up) per second; the largest
   difference between the two encoders' vectors (cosine);
2. index build time: the bundled sources (with and without the embedding cache) and
   the XQuAD dev paragraphs;
3. answer latency at the library level (``QAService.ask`` over the project's eval
   questions) and at the HTTP level (``bench/load.py``: 1, 10, 20 and 50 clients);
4. peak memory (maximum resident set) of the server process, from ``/usr/bin/time -v``.

The whole table goes to ``run.md`` beside ``--out``; with ``--readme`` a few headline
lines (``headline``) replace the block between the ``bench:start`` and ``bench:end``
markers of that file, which links the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # noqa: E402  (bench/load.py, next to this file)

from qa.config import Settings  # noqa: E402
from qa.datasets import read_squad  # noqa: E402
from qa.embedding import default_threads, load_encoder, threads_per_process  # noqa: E402
from qa.report import replace_block  # noqa: E402
from qa.workers import free_port  # noqa: E402

XQUAD = ROOT.parent / "shared" / "benchmarks" / "xquad-dev"


def xquad_texts() -> tuple[list[str], list[str]]:
    """Paragraphs and questions of every XQuAD dev file (EN and RU)."""
    paragraphs, questions = [], []
    for path in sorted(XQUAD.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for article in data["data"]:
            for p in article["paragraphs"]:
                paragraphs.append(p["context"])
                questions += [q["question"] for q in p["qas"]]
    return paragraphs, questions


def flops_per_text(backend, n_tokens: int) -> float:
    """Multiply-adds x 2 of the USE forward pass for one text of ``n_tokens`` pieces,
    from the weight shapes: per token the input projection and the two convolutions of
    each n-gram branch; per text the output projection and the feed-forward head."""
    per_token = backend.proj_W.size + sum(w.size for w in backend.w1) + sum(w.size for w in backend.w2)
    per_text = sum(w.size for w in (backend.cnn_W, backend.d0, backend.d1, backend.d2, backend.d3, backend.p1, backend.p3))
    return 2.0 * (per_token * n_tokens + per_text)


def bench_embeddings(quick: bool) -> dict:
    """The reference against the project's encoder, alternating in one run. The project's
    keeps per-piece rows (qa/use_tables.py), so it is timed on a fresh table each repeat
    (every piece of the paragraphs new: what a build of a new corpus pays) and then again
    on the same paragraphs (every piece seen); its question latency is taken, questions in
    order, on a table warmed from the paragraphs as a service warms it from its sources,
    and on an empty one."""
    from qa.embedding import use_backend, warm_backend

    threads = default_threads()
    paragraphs, questions = xquad_texts()
    questions = questions[: 200 if quick else 600]
    reference = use_backend(threads, fast=False)
    fast = use_backend(threads)
    tokens = [len(fast.sp.encode(p)) for p in paragraphs]
    flops = sum(flops_per_text(fast, n) for n in tokens)
    out: dict = {"threads": threads, "paragraphs": len(paragraphs), "mean_tokens": round(float(np.mean(tokens)), 1),
                 "gflop_per_paragraph": round(flops / len(paragraphs) / 1e9, 3),
                 "distinct_pieces": len({i for p in paragraphs for i in fast.sp.encode(p)}), "questions": len(questions)}
    reference.encode(paragraphs[:8])
    ref_s, first_s, seen_s = [], [], []
    for _ in range(2 if quick else 5):  # best of five: other tenants of a virtual machine come and go
        t0 = time.perf_counter()
        reference.encode(paragraphs)
        ref_s.append(time.perf_counter() - t0)
        fresh = use_backend(threads)
        t0 = time.perf_counter()
        fresh.encode(paragraphs)
        first_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fresh.encode(paragraphs)
        seen_s.append(time.perf_counter() - t0)
    out["table_mb"] = round(fresh.pieces_held * fresh._rows.shape[1] * 4 / 2**20, 1)

    def rate(secs: list[float]) -> dict:
        best = min(secs)
        return {"paragraphs_per_s": round(len(paragraphs) / best, 1), "gflop_per_s": round(flops / best / 1e9, 1)}

    out["reference"], out["fast"], out["fast_pieces_seen"] = rate(ref_s), rate(first_s), rate(seen_s)
    # ``fast`` has encoded nothing yet: its question latency is what a process with an empty
    # table sees; ``served`` is warmed from the paragraphs as a service warms from its sources
    served = use_backend(threads)
    out["served_pieces"] = warm_backend(served, paragraphs)
    out["fast_served"] = {}
    for name, backend in (("reference", reference), ("fast", fast), ("fast_served", served)):
        lat = []
        for q in questions:
            t0 = time.perf_counter()
            backend.encode([q])
            lat.append((time.perf_counter() - t0) * 1000)
        out[name]["question_ms"] = {"p50": round(float(np.percentile(lat, 50)), 2),
                                    "p95": round(float(np.percentile(lat, 95)), 2)}
    sample = paragraphs[::4] + questions[:100]
    a, b = reference.encode(sample), fresh.encode(sample)
    out["min_cosine_fast_vs_reference"] = round(float(((a * b).sum(1) / np.linalg.norm(a, axis=1)).min()), 6)
    return out


def bench_build() -> dict:
    from qa.index import build, build_on_disk
    from qa.syntax import load_parsers

    settings = Settings()
    t0 = time.perf_counter()
    encoder = load_encoder(settings.embedding_model, settings.embedding_threads)
    model_load = time.perf_counter() - t0
    out: dict = {"model_load_s": round(model_load, 2)}
    t0 = time.perf_counter()
    load_parsers()  # apart from the build times, like the encoder
    out["parser_load_s"] = round(time.perf_counter() - t0, 2)
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(index_dir=Path(tmp) / "index")
        cold = build_on_disk(s, encoder=encoder)
        warm = build_on_disk(s, encoder=encoder)  # every vector from the embedding cache
        out["bundled_sources"] = {"docs": cold.docs, "chunks": cold.chunks, "sentences": cold.sentences,
                                  "cold_s": round(cold.seconds, 2), "cached_s": round(warm.seconds, 2)}
    contexts = [d for path in sorted(XQUAD.glob("*.json")) for d in read_squad(path).docs]
    t0 = time.perf_counter()
    data = build(contexts, encoder, settings, clean=False)
    out["xquad_dev"] = {"docs": len(contexts), "chunks": len(data.chunks), "sentences": len(data.sentences),
                        "seconds": round(time.perf_counter() - t0, 2)}
    return out


def bench_library(quick: bool) -> dict:
    from qa.index import open_index
    from qa.pipeline import QAService

    settings = Settings()
    service = QAService(open_index(settings), load_encoder(settings.embedding_model, settings.embedding_threads),
                        settings)
    questions = load.questions()
    for q in questions[:20]:
        service.ask(q)
    lat = []
    for _ in range(1 if quick else 3):
        for q in questions:
            t0 = time.perf_counter()
            service.ask(q)
            lat.append((time.perf_counter() - t0) * 1000)
    return {"questions": len(lat), **{f"p{q}": round(load.percentile(lat, q), 2) for q in (50, 95, 99)}}


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def bench_http(clients: list[int], rates: list[float], duration: float, workers: int, env: dict[str, str]) -> dict:
    """Start the server under ``/usr/bin/time -v`` (for its peak memory), run the load
    script's closed-loop clients and then its open-loop arrival rates against it, stop it.
    With several workers each answers one question at a time (``QA_CPU_SLOTS``: cores
    shared out) unless ``env`` says otherwise."""
    env = {"QA_CPU_SLOTS": str(threads_per_process(workers)), **env}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    timer = ["/usr/bin/time", "-v"] if shutil.which("time") or Path("/usr/bin/time").exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_DB_PATH": str(Path(tmp) / "bench.sqlite3"), **env}
        # the workers as `qa serve --workers` runs them (qa/workers.py: a socket each)
        cmd = [*timer, sys.executable, "-m", "qa.workers", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", "--no-access-log", "--workers", str(workers)]
        err = open(Path(tmp) / "stderr", "w+")  # noqa: SIM115 (read back after the process ends)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stderr=err)
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not become ready")
                time.sleep(0.5)
            runs = [asyncio.run(load.run(url, c, duration)) for c in clients]
            search = asyncio.run(load.run(url, 1, duration, path="/api/search"))
            open_runs = [asyncio.run(load.run_open(url, r, duration)) for r in rates]
        finally:
            # SIGTERM to the server, not to /usr/bin/time: time would die of it without
            # its report and leave the server running
            for pid in _children(proc.pid) if timer else [proc.pid]:
                os.kill(pid, signal.SIGTERM)
            proc.wait(timeout=60)
        err.seek(0)
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err.read())
        err.close()
    return {"workers": workers, "cpu_slots": env["QA_CPU_SLOTS"], "runs": runs, "search": search, "open_loop": open_runs,
            "server_peak_rss_mb": round(int(m.group(1)) / 1024) if m else None}


def markdown(r: dict) -> str:
    e, b, lib, http = r["embeddings"], r["build"], r["library"], r["http"]
    lines = [
        f"Measured by `make bench` on {r['machine']} ({r['date']}; load average before the run {r['load_before']}).",
        "",
        "| what | figure |",
        "|---|---|",
        f"| embedding, XQuAD dev paragraphs ({e['paragraphs']}, {e['mean_tokens']} pieces on average, "
        f"{e['gflop_per_paragraph']} GFLOP each), threads = {e['threads']} | reference {e['reference']['paragraphs_per_s']}"
        f" paragraphs/s ({e['reference']['gflop_per_s']} GFLOP/s); **project {e['fast']['paragraphs_per_s']} paragraphs/s"
        f" ({e['fast']['gflop_per_s']} GFLOP/s of the model's arithmetic)** with every piece new (a fresh piece table: "
        f"{e['distinct_pieces']} pieces, {e['table_mb']} MB), {e['fast_pieces_seen']['paragraphs_per_s']} paragraphs/s "
        f"with every piece seen; min cosine between the two {e['min_cosine_fast_vs_reference']} |",
        f"| question encoding p50 / p95 ({e['questions']} XQuAD dev questions in order) | reference "
        f"{e['reference']['question_ms']['p50']} / {e['reference']['question_ms']['p95']} ms; **project "
        f"{e['fast_served']['question_ms']['p50']} / {e['fast_served']['question_ms']['p95']} ms** with the table warmed "
        f"from the paragraphs as a service warms it from its sources ({e['served_pieces']} pieces), "
        f"{e['fast']['question_ms']['p50']} / {e['fast']['question_ms']['p95']} ms from an empty table |",
        f"| index build, bundled sources ({b['bundled_sources']['docs']} docs, {b['bundled_sources']['chunks']} chunks, "
        f"{b['bundled_sources']['sentences']} sentences) | {b['bundled_sources']['cold_s']} s; "
        f"{b['bundled_sources']['cached_s']} s with every vector in the embedding cache (sentences parsed again; "
        f"encoder load {b['model_load_s']} s and parser load {b.get('parser_load_s', '–')} s more) |",
        f"| index build, XQuAD dev ({b['xquad_dev']['docs']} paragraphs, {b['xquad_dev']['sentences']} sentences) | "
        f"{b['xquad_dev']['seconds']} s |",
        f"| answer latency, library (`QAService.ask`, {lib['questions']} asks) | p50 {lib['p50']} ms, p95 {lib['p95']} ms, "
        f"p99 {lib['p99']} ms |",
    ]
    for run in http["runs"]:
        lat = run["latency_ms"]
        lines.append(f"| `POST /api/ask`, {run['clients']} concurrent clients, {run['duration_s']} s "
                     f"({http['workers']} server workers) | {run['requests_per_s']} requests/s; p50 {lat['p50']} ms, "
                     f"p95 {lat['p95']} ms, p99 {lat['p99']} ms; {run['error_count']} errors; the load client itself used "
                     f"{run['client_cpu_cores']} of the 2 cores |")
    if "search" in http:
        lat = http["search"]["latency_ms"]
        lines.append(f"| `GET /api/search`, 1 client in sequence, {http['search']['duration_s']} s | "
                     f"{http['search']['requests_per_s']} requests/s; p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
                     f"p99 {lat['p99']} ms; {http['search']['error_count']} errors |")
    for run in http["open_loop"]:
        lat = run["latency_ms"]
        lines.append(f"| `POST /api/ask`, open loop: {run['rate_per_s']:g} questions/s arriving for {run['duration_s']} s "
                     f"(at most {run['max_in_flight']} in flight) | p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
                     f"p99 {lat['p99']} ms; {run['error_count']} errors |")
    lines.append(f"| peak memory (max resident set) of a server process | {http['server_peak_rss_mb']} MB |")
    return "\n".join(lines)


BENCH_MARKERS = ("<!-- bench:start -->", "<!-- bench:end -->")


def headline(r: dict, table: str = "bench/results/run.md") -> str:
    """The README's few speed lines: a question alone and under load over HTTP, new text
    embedded, memory; the rest is in ``table``."""
    e, http = r["embeddings"], r["http"]
    runs = {run["clients"]: run for run in http["runs"]}
    alone = f" a question alone p50 {runs[1]['latency_ms']['p50']} ms over HTTP;" if 1 in runs else ""
    loaded = [runs[c] for c in (10, 20) if c in runs]
    lines = [f"Speed (`make bench`, {r['machine']}, {r['date']}; [every figure]({table})):{alone}"]
    if loaded:
        lines.append(" / ".join(str(run["clients"]) for run in loaded) + " clients: "
                     + " / ".join(str(run["requests_per_s"]) for run in loaded) + " answers/s at p50 "
                     + " / ".join(str(run["latency_ms"]["p50"]) for run in loaded) + " ms, p99 "
                     + " / ".join(str(run["latency_ms"]["p99"]) for run in loaded)
                     + f" ms ({http['workers']} server processes);")
    lines.append(f"new text embedded at {e['fast']['paragraphs_per_s']} paragraphs/s; "
                 f"{http['server_peak_rss_mb']} MB a server process.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and shorter HTTP runs")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 10, 20])
    ap.add_argument("--rates", type=float, nargs="*", default=[10.0, 50.0],
                    help="open-loop arrival rates, questions/s")
    ap.add_argument("--duration", type=float, default=None, help="seconds per HTTP run (default 20, quick 5)")
    ap.add_argument("--workers", type=int, default=default_threads(), help="server worker processes")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="setting for the server")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "run.json")
    ap.add_argument("--readme", type=Path, help="replace the bench:start/end block of this file")
    args = ap.parse_args(argv)
    duration = args.duration or (5.0 if args.quick else 20.0)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{os.cpu_count()} cores, {platform.machine()}",
              "load_before": os.getloadavg()[0]}
    for name, fn in (("embeddings", lambda: bench_embeddings(args.quick)), ("build", bench_build),
                     ("library", lambda: bench_library(args.quick)),
                     ("http", lambda: bench_http(args.clients, args.rates, duration, args.workers,
                                                 dict(kv.split("=", 1) for kv in args.env)))):
        print(f"[bench] {name}…", file=sys.stderr, flush=True)
        result[name] = fn()
        print(json.dumps(result[name], ensure_ascii=False), file=sys.stderr, flush=True)
    result["load_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    table = markdown(result)
    print(table)
    md = args.out.with_suffix(".md")
    md.write_text(f"# Performance (`make bench`)\n\n{table}\n", encoding="utf-8")
    if args.readme:
        link = os.path.relpath(md, args.readme.resolve().parent)
        replace_block(args.readme, BENCH_MARKERS, headline(result, link))
    return 0


if __name__ == "__main__":
    sys.exit(main())

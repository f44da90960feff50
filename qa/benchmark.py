"""Retrieval benchmark on SQuAD/XQuAD-format data: every context is a document.

Five settings: EN questions -> EN corpus, RU -> RU, RU -> EN, EN -> RU, and both
languages' questions against both corpora mixed (a hit is either language's version
of the gold paragraph). Metrics: paragraph recall@1, recall@5 and MRR, for BM25,
dense and fused retrieval, plus build time and per-query latency. A second part
measures chunk sizes on whole articles and the fusion weight grid that picked the
defaults. ``python -m qa.benchmark`` regenerates ``eval/retrieval.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.config import PROJECT_ROOT, Settings
from qa.datasets import XQUAD_DEV, read_squad
from qa.embedding import load_encoder
from qa.index import IndexData, build
from qa.metrics import ranking_metrics
from qa.retrieval import MODES, Retriever
from qa.types import Document


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    lang: str
    gold: str  # paragraph key shared by the parallel EN and RU versions
    answers: tuple[str, ...] = ()


def load_squad(path: Path, lang: str) -> tuple[list[Document], list[Question]]:
    """Contexts become documents ``<lang>:<title>:<n>``; questions keep their gold key."""
    f = read_squad(path, lang)
    return list(f.docs), [Question(q.qid, q.question, lang, q.paragraph, q.answers) for q in f.questions]


def paragraph_key(doc_id: str) -> str:
    return doc_id.split(":", 1)[1]


def doc_ranking(retriever: Retriever, q: Question, mode: str, depth: int = 20, qvec: Any = None) -> list[str]:
    """Distinct paragraph keys in rank order (a paragraph may be several chunks)."""
    seen: list[str] = []
    for p in retriever.search(q.text, depth, mode, qvec=qvec):  # type: ignore[arg-type]
        key = paragraph_key(p.chunk.doc_id)
        if key not in seen:
            seen.append(key)
    return seen


def _rank(ranking: list[str], gold: str) -> int | None:
    return ranking.index(gold) + 1 if gold in ranking else None


def run_setting(retriever: Retriever, questions: list[Question]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    qvecs = [retriever.embed_query(q.text) for q in questions]
    for mode in MODES:
        ranks, times = [], []
        for q, v in zip(questions, qvecs, strict=True):
            t = time.perf_counter()
            ranking = doc_ranking(retriever, q, mode, qvec=v if mode != "bm25" else None)
            times.append(time.perf_counter() - t)
            ranks.append(_rank(ranking, q.gold))
        out[mode] = ranking_metrics(ranks) | {"search_ms_p50": 1000 * statistics.median(times)}
    return out


def _lang_of(key: str) -> str:
    return "en" if int(hashlib.md5(key.encode()).hexdigest(), 16) % 2 == 0 else "ru"


def seed_table(encoder: Any, settings: Settings, eval_set: Path) -> dict[str, Any]:
    """Document recall on the project's own questions against the bundled sources."""
    from qa.index import build as build_index
    from qa.sources import load_documents

    docs = load_documents(settings.sources_dir)
    data = build_index(docs, encoder, settings)
    r = Retriever.from_settings(data, encoder, settings)
    lang = {d.doc_id: d.lang for d in docs}
    rows = [json.loads(line) for line in eval_set.read_text(encoding="utf-8").splitlines() if line.strip()]
    groups: dict[str, dict[str, list[int | None]]] = {}
    for row in rows:
        if not row["answerable"]:
            continue
        pair = "cross-lingual" if all(lang[d] != row["lang"] for d in row["doc_ids"]) else "same language"
        for mode in MODES:
            ranking: list[str] = []
            for p in r.search(row["question"], 20, mode):
                if p.chunk.doc_id not in ranking:
                    ranking.append(p.chunk.doc_id)
            rank = next((i + 1 for i, d in enumerate(ranking) if d in row["doc_ids"]), None)
            groups.setdefault(pair, {}).setdefault(mode, []).append(rank)
    return {pair: {mode: ranking_metrics(ranks) for mode, ranks in modes.items()} for pair, modes in groups.items()}


def _build(docs: list[Document], encoder: Any, settings: Settings) -> tuple[IndexData, float]:
    t = time.perf_counter()
    data = build(docs, encoder, settings, clean=False)
    return data, time.perf_counter() - t


def settings_table(encoder: Any, settings: Settings, xquad: Path) -> dict[str, Any]:
    en_docs, en_q = load_squad(xquad / "xquad.en.json", "en")
    ru_docs, ru_q = load_squad(xquad / "xquad.ru.json", "ru")
    en, en_t = _build(en_docs, encoder, settings)
    ru, ru_t = _build(ru_docs, encoder, settings)
    mixed, mixed_t = _build(en_docs + ru_docs, encoder, settings)
    # Each paragraph in one language only (chosen by a hash of its key): topics span both
    # languages, and half the questions must cross languages to find their paragraph.
    one_lang = [d for d in en_docs if _lang_of(paragraph_key(d.doc_id)) == "en"]
    one_lang += [d for d in ru_docs if _lang_of(paragraph_key(d.doc_id)) == "ru"]
    inter, _ = _build(one_lang, encoder, settings)
    r_en, r_ru, r_mixed, r_inter = (Retriever.from_settings(d, encoder, settings) for d in (en, ru, mixed, inter))
    t = time.perf_counter()
    for q in en_q[:200]:
        r_en.search(q.text, 5)
    query_ms = 1000 * (time.perf_counter() - t) / min(200, len(en_q))
    return {
        "settings": {
            "EN→EN": run_setting(r_en, en_q),
            "RU→RU": run_setting(r_ru, ru_q),
            "RU q→EN corpus": run_setting(r_en, ru_q),
            "EN q→RU corpus": run_setting(r_ru, en_q),
            "mixed (EN+RU q → EN+RU corpus)": run_setting(r_mixed, en_q + ru_q),
            "mixed-language corpus, gold in q's language": run_setting(
                r_inter, [q for q in en_q + ru_q if _lang_of(q.gold) == q.lang]),
            "mixed-language corpus, gold in the other language": run_setting(
                r_inter, [q for q in en_q + ru_q if _lang_of(q.gold) != q.lang]),
        },
        "build_seconds": {"en": en_t, "ru": ru_t, "mixed": mixed_t},
        "paragraphs": {"en": len(en_docs), "ru": len(ru_docs)},
        "chunks": {"en": len(en.chunks), "ru": len(ru.chunks), "mixed": len(mixed.chunks)},
        "fused_query_ms_mean_incl_encoding": query_ms,
    }


def _components(retriever: Retriever, questions: list[Question], own_version: bool = False) -> list[tuple[np.ndarray, ...]]:
    """Per question: normalized BM25 (with the words put into the other script for chunks
    in the other language, as ``Retriever.lexical``), chunk cosine, best-sentence cosine,
    same-language flag and gold flag for every chunk, so a weight grid is pure numpy.
    ``own_version``: only the gold paragraph in the question's language is a hit."""
    chunks = retriever.index.chunks
    all_ids = np.arange(len(chunks))
    lang = np.array([c.lang for c in chunks])
    keys = [paragraph_key(c.doc_id) for c in chunks]
    out: list[tuple[np.ndarray, ...]] = []
    for q in questions:
        same = lang == q.lang
        bmn = retriever.lexical(q.text, all_ids, retriever._bm25_scores(q.text), same)
        v = retriever.embed_query(q.text)
        ccos = retriever.index.chunk_index.reconstruct_batch(all_ids) @ v
        scos = retriever.best_sentence_scores(v, all_ids, ccos)
        gold = np.array([k == q.gold and (s or not own_version) for k, s in zip(keys, same, strict=True)])
        out.append((bmn, ccos, scos, same, gold))
    return out


def _grid_recall(comps: list[tuple[np.ndarray, ...]], same: float, cross: float, sent: float,
                 bonus: float = 0.0) -> tuple[float, float]:
    r1 = r5 = 0
    for bmn, ccos, scos, samelang, gold in comps:
        w = np.where(samelang, same, cross)
        score = w * bmn + (1 - w) * ((1 - sent) * ccos + sent * scos) + bonus * samelang
        order = np.argsort(-score, kind="stable")
        top = gold[order]
        # Ranked by chunk, not by distinct paragraph: recall@1 is exact, recall@5 a lower
        # bound when one paragraph fills several of the top five places.
        r1 += bool(top[0])
        r5 += bool(top[:5].any())
    n = len(comps) or 1
    return r1 / n, r5 / n


def weight_grid(encoder: Any, settings: Settings, xquad: Path) -> dict[str, Any]:
    en_docs, en_q = load_squad(xquad / "xquad.en.json", "en")
    ru_docs, ru_q = load_squad(xquad / "xquad.ru.json", "ru")
    en, _ = _build(en_docs, encoder, settings)
    ru, _ = _build(ru_docs, encoder, settings)
    r_en, r_ru = Retriever.from_settings(en, encoder, settings), Retriever.from_settings(ru, encoder, settings)
    same = _components(r_en, en_q) + _components(r_ru, ru_q)
    cross = _components(r_en, ru_q) + _components(r_ru, en_q)
    rows = []
    for w_same, w_sent in itertools.product([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.0, 0.25, 0.5, 0.75, 1.0]):
        r1, r5 = _grid_recall(same, w_same, 0.0, w_sent)
        rows.append({"pair": "same", "bm25": w_same, "sentence": w_sent, "recall@1": r1, "recall@5": r5})
    for w_cross, w_sent in itertools.product([0.0, 0.05, 0.1, 0.2, 0.3, 0.4], [0.0, 0.25, 0.5, 0.75, 1.0]):
        r1, r5 = _grid_recall(cross, 0.0, w_cross, w_sent)
        rows.append({"pair": "cross", "bm25": w_cross, "sentence": w_sent, "recall@1": r1, "recall@5": r5})
    return {"rows": rows, "languages": language_grid(encoder, settings, en_docs + ru_docs, en_q + ru_q)}


def language_grid(encoder: Any, settings: Settings, docs: list[Document], questions: list[Question]) -> list[dict[str, Any]]:
    """The weights that compare the two languages' chunks: each paragraph in one language
    (is it found from the question's own language, and from the other?) and both versions
    of every paragraph (is the question's own language's version first?), recall@1 at
    sentence weight 0.5."""
    one_lang = [d for d in docs if _lang_of(paragraph_key(d.doc_id)) == d.lang]
    inter = Retriever.from_settings(_build(one_lang, encoder, settings)[0], encoder, settings)
    both = Retriever.from_settings(_build(docs, encoder, settings)[0], encoder, settings)
    own = _components(inter, [q for q in questions if _lang_of(q.gold) == q.lang])
    other = _components(inter, [q for q in questions if _lang_of(q.gold) != q.lang])
    version = _components(both, questions, own_version=True)
    rows = []
    for w_same, w_cross, bonus in itertools.product([0.3, 0.4], [0.05, 0.2, 0.3, 0.4, 0.5],
                                                    [0.0, 0.01, 0.02, 0.03, 0.05]):
        r = {name: _grid_recall(c, w_same, w_cross, 0.5, bonus)[0] for name, c in
             (("own", own), ("other", other), ("own_version", version))}
        rows.append({"bm25_same": w_same, "bm25_cross": w_cross, "bonus": bonus, **r, "sum": sum(r.values())})
    return sorted(rows, key=lambda r: -r["sum"])


def chunking_table(encoder: Any, settings: Settings, xquad: Path, sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Chunk settings on whole articles (paragraphs joined): a hit is a retrieved chunk
    that contains the gold answer's character range."""
    rows = []
    for lang in ("en", "ru"):
        data = json.loads((xquad / f"xquad.{lang}.json").read_text(encoding="utf-8"))["data"]
        docs, golds = [], []
        for a_i, article in enumerate(data):
            parts, offset = [], 0
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    if qa.get("answers"):
                        ans = qa["answers"][0]
                        s = offset + ans["answer_start"]
                        golds.append((qa["question"], f"a{a_i}", s, s + len(ans["text"])))
                parts.append(para["context"])
                offset += len(para["context"]) + 2
            docs.append(Document(doc_id=f"a{a_i}", text="\n\n".join(parts), lang=lang, title=article.get("title", "")))
        for size, overlap in sizes:
            s = settings.model_copy(update={"chunk_size": size, "chunk_overlap": overlap})
            idx, secs = _build(docs, encoder, s)
            r = Retriever.from_settings(idx, encoder, s)
            ranks = []
            for question, doc_id, a, b in golds:
                hits = r.search(question, 5)
                rank = next((i + 1 for i, p in enumerate(hits)
                             if p.chunk.doc_id == doc_id and p.chunk.start <= a and b <= p.chunk.end), None)
                ranks.append(rank)
            m = ranking_metrics(ranks)
            rows.append({"lang": lang, "chunk_size": size, "chunk_overlap": overlap, "chunks": len(idx.chunks),
                         "mean_chunk_chars": statistics.mean(len(c.text) for c in idx.chunks),
                         "build_seconds": secs, **m})
    return rows


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def write_report(result: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "retrieval.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    st = result["settings_table"]
    lines = [
        "# Retrieval on XQuAD dev",
        "",
        f"Generated by `python -m qa.benchmark` ({result['generated']}, {result['machine']}). "
        f"Corpus: {st['paragraphs']['en']} paragraphs a language; every context is one document. "
        "Paragraph recall@1 / recall@5 / MRR.",
        "",
        "| setting | BM25 | dense | fused |",
        "|---|---|---|---|",
    ]
    for name, row in st["settings"].items():
        cells = [" / ".join(_fmt(row[m][k]) for k in ("recall@1", "recall@5", "mrr")) for m in ("bm25", "dense", "fused")]
        lines.append(f"| {name} ({row['fused']['questions']} q) | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Build (embed + index, in memory): EN {st['build_seconds']['en']:.1f} s, RU {st['build_seconds']['ru']:.1f} s, "
        f"mixed {st['build_seconds']['mixed']:.1f} s ({st['chunks']['mixed']} chunks). "
        f"Fused query, question encoding included: {st['fused_query_ms_mean_incl_encoding']:.1f} ms mean.",
        "",
        "Settings used: " + ", ".join(f"`{k}={v}`" for k, v in result["used_settings"].items()) + ".",
        "",
        "## The project's questions against the bundled sources (document recall@1 / @5 / MRR)",
        "",
        "| questions | BM25 | dense | fused |",
        "|---|---|---|---|",
        *[f"| {pair} ({row['fused']['questions']} q) | "
          + " | ".join(" / ".join(_fmt(row[m][k]) for k in ("recall@1", "recall@5", "mrr")) for m in ("bm25", "dense", "fused"))
          + " |" for pair, row in result["seed"].items()],
        "",
        "## Chunking (whole articles; a hit is a chunk containing the gold answer)",
        "",
        "| lang | size / overlap | chunks | mean chars | recall@1 | recall@5 | MRR |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["chunking"]:
        lines.append(f"| {row['lang']} | {row['chunk_size']} / {row['chunk_overlap']} | {row['chunks']} | "
                     f"{row['mean_chunk_chars']:.0f} | {_fmt(row['recall@1'])} | {_fmt(row['recall@5'])} | {_fmt(row['mrr'])} |")
    lines += ["", "## Fusion weight grid (paragraph recall@1 / @5, EN+RU questions pooled)", "",
              "| pair | BM25 weight | sentence weight | recall@1 | recall@5 |", "|---|---|---|---|---|"]
    for row in result["grid"]["rows"]:
        lines.append(f"| {row['pair']} | {row['bm25']} | {row['sentence']} | {_fmt(row['recall@1'])} | {_fmt(row['recall@5'])} |")
    lines += ["", "## Comparing the languages (recall@1, best ten by their sum)", "",
              "Each paragraph in one language: is it found from the question's own language (own) and from the "
              "other (other)? Both versions of every paragraph: is the question's own language's version first "
              "(own version)? Sentence weight 0.5; BM25 of other-language chunks counts the question's words put "
              "into their script (qa/retrieval.py, `Retriever.lexical`). The top rows are within a few questions of "
              "each other; the defaults are the one of them whose bonus keeps the question's own language first "
              "for nine in ten questions answered in both (a visitor reads the answer in their language when "
              "both have it).", "",
              "| BM25 weight (same / other language) | same-language bonus | own | other | own version | sum |",
              "|---|---|---|---|---|---|"]
    for row in result["grid"].get("languages", [])[:10]:
        lines.append(f"| {row['bm25_same']} / {row['bm25_cross']} | {row['bonus']} | {_fmt(row['own'])} | "
                     f"{_fmt(row['other'])} | {_fmt(row['own_version'])} | {_fmt(row['sum'])} |")
    (out_dir / "retrieval.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--xquad", type=Path, default=XQUAD_DEV)
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "eval")
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--skip-chunking", action="store_true")
    args = ap.parse_args(argv)
    settings = Settings()
    encoder = load_encoder(settings.embedding_model, settings.embedding_threads)
    result: dict[str, Any] = {
        "generated": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores",
        "used_settings": {k: getattr(settings, k) for k in (
            "embedding_model", "chunk_size", "chunk_overlap", "bm25_weight_same", "bm25_weight_cross",
            "sentence_weight", "same_lang_bonus", "translate_sim", "translate_top", "candidates")},
        "settings_table": settings_table(encoder, settings, args.xquad),
        "chunking": [] if args.skip_chunking else chunking_table(
            encoder, settings, args.xquad, [(400, 80), (800, 150), (1200, 200), (1600, 300)]),
        "seed": seed_table(encoder, settings, PROJECT_ROOT / "eval" / "technopolis.jsonl"),
        "grid": {"rows": []} if args.skip_grid else weight_grid(encoder, settings, args.xquad),
    }
    write_report(result, args.out)
    print((args.out / "retrieval.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()

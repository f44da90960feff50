"""The eval harness: run systems over eval sets, keep one record per question, then
compute metrics from the records (never from the system directly), so every figure
in a report can be traced to the questions behind it.

A *system* is a retrieval mode plus an answer step. The run always includes the
baselines (BM25 only and dense only, each answering with the first sentence of its top
passage, and the first sentence of the fused top passage) beside the fused system, so a
change is judged against them; on a set of follow-up questions
(items with a ``history``) also the fused system asked without the history, which
measures what resolving a follow-up against the conversation is worth.

Abstention is decided here from the recorded confidence and the configured
threshold, exactly as ``QAService.ask`` does it; recording the withheld candidate as
well lets the coverage curve replay every other threshold without rerunning.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.config import Settings
from qa.datasets import EvalItem, EvalSet
from qa.index import IndexData, build
from qa.metrics import abstention_metrics, best_over_golds, contains, percentile, ranking_metrics
from qa.pipeline import QAService
from qa.reader import cached_reader
from qa.retrieval import Mode

CURVE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(21))


@dataclass(frozen=True)
class System:
    name: str
    mode: Mode
    answerer: str
    history: bool = True  # False: each question is asked as if it opened the conversation


# the name of a compared answer step's system (``qa eval --compare``)
COMPARED = {"extractive": "fused-rules", "reader": "fused-reader", "first-sentence": "first-sentence"}


def default_systems(settings: Settings, compare: Iterable[str] = ()) -> list[System]:
    """The fused system, the retrieval baselines with the same answer step, the first
    sentence baseline, and fused retrieval with each answer step in ``compare`` (the earlier
    rule-based step beside the reader, in one run)."""
    # the retrieval baselines answer with the first sentence of their top passage: what
    # they are there for is their retrieval figures, at no reader's cost
    systems = [System("fused", "fused", settings.answerer), System("bm25", "bm25", "first-sentence"),
               System("dense", "dense", "first-sentence")]
    for answerer in dict.fromkeys([*compare, "first-sentence"]):
        if answerer != settings.answerer:
            systems.append(System(COMPARED[answerer], "fused", answerer))
    return systems


def run_items(items: Iterable[EvalItem], service: QAService, system: System, threshold: float,
              meta: dict[str, str]) -> list[dict[str, Any]]:
    """Ask every question; one JSON-ready record each, with its per-question verdicts."""
    records = []
    for item in items:
        t = time.perf_counter()
        history = item.history if system.history else ()
        ans = service.ask(item.question, history, mode=system.mode, answerer=system.answerer, threshold=0.0)
        latency = 1000 * (time.perf_counter() - t)
        retrieved: list[str] = []
        for p in ans.passages:
            if p.chunk.doc_id not in retrieved:
                retrieved.append(p.chunk.doc_id)
        gold_rank = next((i + 1 for i, d in enumerate(retrieved) if d in item.doc_ids), None)
        abstained = ans.answer is None or ans.confidence < threshold
        shown = None if abstained else ans.answer
        prediction = None if abstained else (ans.short_answer or ans.answer)
        first = ans.citations[0] if ans.citations and not abstained else None
        records.append({
            **meta, "system": system.name, "id": item.qid, "question": item.question, "history": list(history),
            "lang": item.lang,
            "pair": item.pair, "category": item.category, "answerable": item.answerable,
            "gold_answers": list(item.answers), "gold_doc_ids": list(item.doc_ids),
            "answer": shown, "short_answer": None if abstained else ans.short_answer,
            "candidate": ans.answer, "confidence": round(ans.confidence, 4), "abstained": abstained,
            "citations": [{"doc_id": c.doc_id, "start": c.start, "end": c.end, "quote": c.quote} for c in ans.citations],
            "retrieved": retrieved[:5], "gold_rank": gold_rank,
            "correct": {
                "contains": contains(shown, item.answers),
                "em": best_over_golds("em", prediction, item.answers),
                "f1": best_over_golds("f1", prediction, item.answers),
                "citation": bool(first and first.doc_id in item.doc_ids and contains(first.quote, item.answers)),
            },
            "latency_ms": round(latency, 3),
            "features": {k: round(v, 4) for k, v in ans.features.items()},
        })
    return records


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def answer_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Answer scores over the answerable questions (an abstention there counts as wrong)."""
    ans = [r for r in records if r["answerable"]]
    m = {
        "containment@1": _mean([float(r["correct"]["contains"]) for r in ans]),
        "em": _mean([100 * r["correct"]["em"] for r in ans]),
        "f1": _mean([100 * r["correct"]["f1"] for r in ans]),
        "citation_accuracy": _mean([float(r["correct"]["citation"]) for r in ans]),
        "answered": _mean([float(not r["abstained"]) for r in ans]),
        # longer answers contain more: keep their length in sight
        "answer_chars": _mean([float(len(r["answer"])) for r in ans if r["answer"]]),
    }
    return m


def coverage_curve(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replay the threshold: coverage and accuracy of the answerable questions, and
    abstention precision/recall, if the threshold were ``t``."""
    rows = []
    for t in CURVE_THRESHOLDS:
        answered = [r["candidate"] is not None and r["confidence"] >= t for r in records]
        ans = [(r, a) for r, a in zip(records, answered, strict=True) if r["answerable"]]
        kept = [r for r, a in ans if a]
        ab = abstention_metrics([not a for a in answered], [r["answerable"] for r in records])
        rows.append({
            "threshold": t,
            "coverage": len(kept) / len(ans) if ans else None,
            "accuracy": _mean([float(contains(r["candidate"], r["gold_answers"])) for r in kept]),
            "abstention_precision": ab["precision"], "abstention_recall": ab["recall"],
        })
    return rows


def _group(records: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r[key] is not None:
            out.setdefault(str(r[key]), []).append(r)
    return dict(sorted(out.items()))


def _compact(records: list[dict[str, Any]]) -> dict[str, Any]:
    ranks = [r["gold_rank"] for r in records if r["answerable"]]
    ab = abstention_metrics([r["abstained"] for r in records], [r["answerable"] for r in records])
    return {
        "questions": len(records),
        "recall@1": ranking_metrics(ranks)["recall@1"] if ranks else None,
        **{k: v for k, v in answer_metrics(records).items() if k not in ("answered", "answer_chars")},
        "abstention_recall": ab["recall"],
    }


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """All metrics of one run (one system on one eval set) from its records."""
    ranks = [r["gold_rank"] for r in records if r["answerable"]]
    unanswerable = sum(1 for r in records if not r["answerable"])
    lat = [r["latency_ms"] for r in records]
    return {
        "questions": len(records),
        "answerable": len(records) - unanswerable,
        "unanswerable": unanswerable,
        "retrieval": {k: v for k, v in ranking_metrics(ranks).items() if k != "questions"},
        "answers": answer_metrics(records),
        "abstention": abstention_metrics([r["abstained"] for r in records], [r["answerable"] for r in records])
        if unanswerable else None,
        "latency_ms": {"p50": statistics.median(lat) if lat else 0.0, "p95": percentile(lat, 95)},
        "by_lang": {k: _compact(v) for k, v in _group(records, "lang").items()},
        "by_pair": {k: _compact(v) for k, v in _group(records, "pair").items()},
        "by_category": {k: _compact(v) for k, v in _group(records, "category").items()},
        "coverage_curve": coverage_curve(records),
    }


def evaluate(
    eval_sets: list[EvalSet],
    settings: Settings,
    encoder: Any,
    bundled: Callable[[], IndexData],
    systems: list[System] | None = None,
    limit: int | None = None,
    records_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Run every system on every eval set; returns ``{dataset: {setting: {system: metrics}}}``.

    ``bundled`` opens the index of the bundled sources (JSONL sets are asked against it);
    a benchmark's contexts are indexed in memory, once per distinct corpus.
    """
    systems = systems or default_systems(settings)
    results: dict[str, Any] = {}
    built: dict[tuple[str, ...], QAService] = {}
    # one reader for every corpus (loading it costs seconds)
    reader = None
    if any(s.answerer == "reader" for s in systems):
        reader = cached_reader(settings.reader_weights, settings.reader_precision)
    for es in eval_sets:
        if es.docs is None:
            key: tuple[str, ...] = ("<bundled>",)
            if key not in built:
                built[key] = QAService(bundled(), encoder, settings, reader=reader)
        else:
            key = tuple(d.doc_id for d in es.docs)
            if key not in built:
                progress(f"indexing {es.dataset} {es.setting}: {len(es.docs)} documents")
                built[key] = QAService(build(list(es.docs), encoder, settings, clean=False), encoder, settings,
                                       reader=reader)
        service = built[key]
        items = es.items[:limit] if limit else es.items
        for system in _with_baselines(systems, items, settings):
            progress(f"{es.dataset} {es.setting} {system.name}: {len(items)} questions")
            records = run_items(items, service, system, settings.threshold(system.answerer),
                                {"dataset": es.dataset, "setting": es.setting})
            results.setdefault(es.dataset, {}).setdefault(es.setting, {})[system.name] = summarize(records)
            if records_dir is not None:
                write_records(records_dir / f"{es.dataset}.{_slug(es.setting)}.{system.name}.jsonl", records)
    return results


def _with_baselines(systems: list[System], items: tuple[EvalItem, ...], settings: Settings) -> list[System]:
    """``systems``, and when some questions are follow-ups (have a history) the fused
    system once more without it: the baseline that resolving follow-ups must beat."""
    if not any(it.history for it in items) or not any(s.name == "fused" for s in systems):
        return systems
    return [*systems, System("fused-no-history", "fused", settings.answerer, history=False)]


def _slug(text: str) -> str:
    return text.replace("→", "-").replace(" ", "-").replace("+", "-")


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def lookup(results: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path such as ``answers.containment@1``, None when absent."""
    value: Any = results
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def check_thresholds(results: dict[str, Any], thresholds: dict[str, Any]) -> tuple[list[str], int]:
    """Compare metrics with ``eval/thresholds.json`` ({dataset: {setting: {system: {metric: min}}}}).

    Only datasets that were run are checked. Returns the failures and how many checks ran;
    a metric that is missing or undefined fails (a gate must not pass by not measuring).
    """
    failures, checked = [], 0
    for dataset, settings in thresholds.items():
        if dataset.startswith("_") or dataset not in results:
            continue
        for setting, systems in settings.items():
            for system, metrics in systems.items():
                run = results[dataset].get(setting, {}).get(system)
                for metric, minimum in metrics.items():
                    checked += 1
                    value = lookup(run, metric) if run is not None else None
                    where = f"{dataset} / {setting} / {system} / {metric}"
                    if value is None:
                        failures.append(f"{where}: not measured (threshold {minimum})")
                    elif value < minimum:
                        failures.append(f"{where}: {value:.4f} < threshold {minimum}")
    return failures, checked

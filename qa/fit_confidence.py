"""Fit the reader's confidence and abstention threshold: ``python -m qa.fit_confidence``
(``make fit-confidence``), written to ``qa/reader_confidence.json``.

The confidence is P(the answer shown holds a right answer), a logistic function of the
reader's span-versus-no-answer margin and the retrieval scores (``qa.reading.FEATURES``).
It is fitted on three kinds of question, none of them in a set the README reports:

- XQuAD dev questions against XQuAD dev's paragraphs, every language pair (label: the
  answer sentence holds a gold answer);
- near misses: the same questions against the same corpus *without their own paragraph*,
  so the reader reads the article's other paragraphs, on the same topic and in the same
  words, which do not answer them (label 0; SQuAD 2.0's kind of unanswerable question);
- off-topic: XQuAD questions of half the articles against the bundled sources (label 0);
  the other half is eval/off-topic.jsonl, which the eval reports.

The threshold is the one that makes the most right decisions (answer a right answer,
decline the rest) on this weighted fit set. The project's near misses and eval sets are
never used here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from qa.config import PROJECT_ROOT, READER_CONFIDENCE, Settings
from qa.datasets import eval_item, load_dataset
from qa.embedding import load_encoder
from qa.index import build, open_index
from qa.metrics import contains
from qa.pipeline import QAService
from qa.reader import cached_reader
from qa.reading import FEATURES
from qa.tuning import article_half, off_topic_rows

# The weight of each kind of negative against the on-topic answers: the prior that a
# public widget's questions are about a tenth near misses and a fifth off-topic.
NEAR_MISS_SHARE = 0.15
OFF_TOPIC_SHARE = 0.25


def _features(answer: Any) -> list[float] | None:
    return [answer.features[f] for f in FEATURES] if answer.features else None


def rows(service: QAService, items: Any, desc: str, near_miss: bool = False) -> tuple[list[list[float]], list[float]]:
    """Features and labels of each item's answer; with ``near_miss`` the item's own
    paragraphs are taken out of what the reader reads (label 0)."""
    x, y = [], []
    for it in tqdm(items, desc=desc, unit="q", file=sys.stderr, dynamic_ncols=True):
        if near_miss:
            passages = service.retriever.search(it.question, service.settings.answer_passages + 2)
            passages = [p for p in passages if p.chunk.doc_id not in it.doc_ids]
            draft = service.reading(passages, it.question) if service.reading else None
            if draft is not None:
                x.append([draft.features[f] for f in FEATURES])
                y.append(0.0)
            continue
        ans = service.ask(it.question, threshold=0.0)
        f = _features(ans)
        if f is not None:
            x.append(f)
            y.append(float(it.answerable and bool(ans.answer) and contains(ans.answer, it.answers)))
    return x, y


def fit(groups: dict[str, tuple[list[list[float]], list[float]]], shares: dict[str, float]) -> dict[str, Any]:
    """Weighted logistic regression (gradient descent on standardized inputs); each group
    weighs ``shares[group]`` of the on-topic group's total."""
    n_on = len(groups["on_topic"][0])
    xs, ts, ws, names = [], [], [], []
    for name, (x, t) in groups.items():
        xs += x
        ts += t
        ws += [shares.get(name, 1.0) * n_on / max(1, len(x))] * len(x)
        names += [name] * len(x)
    f, t, w = np.array(xs), np.array(ts), np.array(ws)
    mu, sd = f.mean(0), f.std(0) + 1e-9
    z = np.hstack([(f - mu) / sd, np.ones((len(f), 1))])
    beta = np.zeros(z.shape[1])
    for _ in range(4000):
        p = 1 / (1 + np.exp(-z @ beta))
        beta -= 0.5 * (z.T @ (w * (p - t)) / w.sum() + 1e-3 * np.r_[beta[:-1], 0.0])
    coef = beta[:-1] / sd
    intercept = float(beta[-1] - (beta[:-1] * mu / sd).sum())
    p = 1 / (1 + np.exp(-(f @ coef + intercept)))
    grid = [round(0.05 * i, 2) for i in range(1, 20)]
    right = [float((w * ((p >= th) == (t == 1))).sum() / w.sum()) for th in grid]
    threshold = grid[int(np.argmax(right))]
    kind = np.array(names)
    summary = {}
    for name in groups:
        m = kind == name
        summary[name] = {"questions": int(m.sum()), "right": int(t[m].sum()),
                         "answered": round(float((p[m] >= threshold).mean()), 3) if m.any() else None}
        if name == "on_topic":
            answered = m & (p >= threshold)
            summary[name]["right_kept"] = round(float((p[m & (t == 1)] >= threshold).mean()), 3)
            summary[name]["accuracy_of_answered"] = round(float(t[answered].mean()), 3) if answered.any() else None
    return {"weights": {**{k: round(float(c), 5) for k, c in zip(FEATURES, coef, strict=True)},
                        "intercept": round(intercept, 5)},
            "threshold": threshold, "right_decisions": dict(zip(map(str, grid), map(lambda r: round(r, 4), right), strict=True)),
            "fit_set": summary}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qa.fit_confidence", description=__doc__.split("\n\n")[0])
    ap.add_argument("--xquad", type=Path, default=PROJECT_ROOT / "eval" / "xquad-dev")
    ap.add_argument("--out", type=Path, default=READER_CONFIDENCE)
    ap.add_argument("--limit", type=int, default=0, help="first N questions of each setting (a quick look)")
    args = ap.parse_args(argv)
    settings = Settings(answerer="reader")
    encoder = load_encoder(settings.embedding_model, settings.embedding_threads)
    reader = cached_reader(settings.reader_weights, settings.reader_precision)
    on: tuple[list[list[float]], list[float]] = ([], [])
    near: tuple[list[list[float]], list[float]] = ([], [])
    for es in load_dataset(args.xquad, {}, ("same", "cross")):
        items = es.items[:args.limit] if args.limit else es.items
        service = QAService(build(list(es.docs or ()), encoder, settings, clean=False), encoder, settings, reader=reader)
        for acc, kw in ((on, {}), (near, {"near_miss": True})):
            x, y = rows(service, items, f"{es.setting} {'near miss' if kw else 'answers'}", **kw)
            acc[0].extend(x)
            acc[1].extend(y)
    bundled = QAService(open_index(settings), encoder, settings, reader=reader)
    off_items = [eval_item(r, {}) for r in off_topic_rows(args.xquad, 0)]
    off = rows(bundled, off_items[:args.limit * 2] if args.limit else off_items, "off-topic")
    result = fit({"on_topic": on, "near_miss": near, "off_topic": off},
                 {"near_miss": NEAR_MISS_SHARE, "off_topic": OFF_TOPIC_SHARE})
    result = {"fitted_on": "XQuAD dev answers and near misses (every language pair; a near miss is the question "
                           "against its corpus without its own paragraph) and off-topic XQuAD questions of half its "
                           "articles against the bundled sources (python -m qa.fit_confidence)",
              "reader": str(settings.reader_weights.name), **result}
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


__all__ = ["article_half", "main"]

if __name__ == "__main__":
    sys.exit(main())

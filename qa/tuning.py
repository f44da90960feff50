"""Tune the answer step's sentence weights on XQuAD dev (never on the project's eval set,
which only reports): every question's candidate sentences and features are computed
once, then a weight grid is pure numpy. ``python -m qa.tuning`` writes
``eval/answer-tuning.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from qa.answering import FEATURES, AnswerWeights
from qa.config import PROJECT_ROOT, Settings
from qa.datasets import EvalItem, load_dataset, load_jsonl
from qa.embedding import load_encoder
from qa.index import build, open_index
from qa.metrics import contains
from qa.pipeline import QAService
from qa.questions import question_type
from qa.text import detect_lang

Table = tuple[np.ndarray, np.ndarray]  # features (n x f), sentence contains a gold answer (n)


def tables(service: QAService, items: tuple[EvalItem, ...]) -> list[Table]:
    out = []
    ex = service.extractor
    for it in items:
        if not it.answerable:
            continue
        qvec = service.retriever.embed_query(it.question)
        passages = service.retriever.search(it.question, service.settings.answer_passages, qvec=qvec)
        t = ex.table(passages, ex.question_terms(it.question), question_type(it.question), detect_lang(it.question), qvec)
        labels = np.array([contains(service.index.docs[d].text[a:b], it.answers) for d, a, b, _l in t.spans], dtype=bool)
        out.append((t.x, labels))
    return out


def accuracy(tabs: list[Table], w: np.ndarray) -> float:
    """Share of questions whose top-scored sentence contains a gold answer."""
    hits = 0
    for x, y in tabs:
        if len(y):
            hits += bool(y[int(np.argmax(x @ w))])
    return hits / (len(tabs) or 1)


def fit_confidence(tabs: list[Table], w: np.ndarray, lexical: int) -> dict[str, float]:
    """Logistic fit of "the chosen sentence holds a gold answer" on the chosen sentence's
    score, its margin over the runner-up and its lexical share (the inputs of
    ``qa.answering.confidence``); plain gradient descent on standardized inputs."""
    feats, ys = [], []
    for x, y in tabs:
        if not len(y):
            continue
        s = x @ w
        order = np.argsort(-s)
        margin = s[order[0]] - s[order[1]] if len(s) > 1 else 0.0
        feats.append([s[order[0]], margin, x[order[0], lexical]])
        ys.append(float(y[order[0]]))
    f, t = np.array(feats), np.array(ys)
    mu, sd = f.mean(0), f.std(0) + 1e-9
    z = np.hstack([(f - mu) / sd, np.ones((len(f), 1))])
    beta = np.zeros(z.shape[1])
    for _ in range(5000):
        p = 1 / (1 + np.exp(-z @ beta))
        beta -= 0.5 * z.T @ (p - t) / len(t)
    coef = beta[:-1] / sd
    return {"score": float(coef[0]), "margin": float(coef[1]), "lexical": float(coef[2]),
            "intercept": float(beta[-1] - (beta[:-1] * mu / sd).sum())}


def oracle(tabs: list[Table]) -> float:
    return sum(bool(y.any()) for _x, y in tabs) / (len(tabs) or 1)


GRID = {
    "lexical": [0.4, 0.6, 1.0],
    "passage": [1.0, 2.0, 3.0],
    "shaped": [0.1, 0.2, 0.3],
    "typed": [0.05, 0.1],
    "window": [0.0, 0.2],
    "length": [0.05, 0.1, 0.15, 0.2, 0.3],
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--xquad", type=Path, default=PROJECT_ROOT / "eval" / "xquad-dev")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "eval")
    args = ap.parse_args(argv)
    settings = Settings()
    encoder = load_encoder(settings.embedding_model, settings.embedding_threads)
    tune: dict[str, list[Table]] = {}
    for es in load_dataset(args.xquad, {}, ("same", "cross")):
        service = QAService(build(list(es.docs or ()), encoder, settings, clean=False), encoder, settings)
        tune[es.setting] = tables(service, es.items)
    from qa.sources import load_documents

    langs = {d.doc_id: d.lang for d in load_documents(settings.sources_dir)}
    own = load_jsonl(PROJECT_ROOT / "eval" / "technopolis.jsonl", langs)
    check = {"technopolis": tables(QAService(open_index(settings), encoder, settings), own.items)}
    base = AnswerWeights()
    rows = []
    names = list(GRID)
    for values in itertools.product(*GRID.values()):
        w = replace(base, **dict(zip(names, values, strict=True)))
        vec = w.vector()
        acc = {k: accuracy(v, vec) for k, v in tune.items()}
        rows.append({**dict(zip(names, values, strict=True)), "mean": float(np.mean(list(acc.values()))), **acc,
                     "technopolis": accuracy(check["technopolis"], vec)})
    rows.sort(key=lambda r: -r["mean"])
    current = {k: accuracy(v, base.vector()) for k, v in {**tune, **check}.items()}
    pooled = [t for v in tune.values() for t in v]
    fit = fit_confidence(pooled, base.vector(), FEATURES.index("lexical"))
    result = {"confidence_fit": fit, "features": FEATURES, "current": asdict(base), "current_accuracy": current,
              "oracle": {k: oracle(v) for k, v in {**tune, **check}.items()}, "top": rows[:25]}
    (args.out / "answer-tuning.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    _write_md(result, args.out / "answer-tuning.md")
    print((args.out / "answer-tuning.md").read_text(encoding="utf-8"))


def _write_md(result: dict[str, Any], path: Path) -> None:
    settings = list(result["oracle"])
    lines = ["# Answer sentence weights (tuned on XQuAD dev)", "",
             "Generated by `python -m qa.tuning`. Accuracy = the top-scored sentence of the top passages contains a "
             "gold answer (before joining neighbours). The technopolis column is reported, never used to choose.", "",
             "Oracle (some candidate sentence contains a gold answer): "
             + ", ".join(f"{k} {v:.3f}" for k, v in result["oracle"].items()) + ".", "",
             "Current weights: " + ", ".join(f"`{k}={v}`" for k, v in result["current"].items()) + " → "
             + ", ".join(f"{k} {v:.3f}" for k, v in result["current_accuracy"].items()) + ".", "",
             "Confidence fit (XQuAD dev, chosen sentence holds a gold answer): "
             + ", ".join(f"`{k}={v:.3f}`" for k, v in result["confidence_fit"].items()) + ".", "",
             "| " + " | ".join([*GRID, "mean (XQuAD)", *settings]) + " |",
             "|" + "---|" * (len(GRID) + 1 + len(settings))]
    for r in result["top"]:
        lines.append("| " + " | ".join([*(str(r[k]) for k in GRID), f"{r['mean']:.3f}",
                                        *(f"{r[k]:.3f}" for k in settings)]) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

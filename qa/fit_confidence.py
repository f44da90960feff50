"""Fit how the reading step chooses, follows up and declines: ``python -m qa.fit_confidence``
(``make fit-confidence``), written to ``qa/reader_confidence.json``.

Three things are fitted, in this order, on questions of XQuAD dev's articles of one half
(``--half``), read by a reader that was *not* trained on them (``--reader``: the reader
trained on the other half, see the Makefile), so that the reader's scores look as they do
on questions it has never seen:

1. the packing (``qa.reading.Packing``: how many top passages the window draws sentences
   from, and its size) together with the span choice (``qa.reading.Selection``: the weights
   of the passage's retrieval score and rank, its being in the question's language and the
   sentence's cosine beside the span's score), by the share of answers whose sentence holds
   a gold answer (a grid), over the questions asked of the paragraphs and of the articles
   joined into long documents (``as_articles``: the bundled sources' shape);
2. how a follow-up is read (``qa.reading.asked``): the current question first or the
   earlier one first, on pairs of consecutive questions about one paragraph, asked of the
   articles;
3. the confidence, P(the answer shown holds a right answer), a logistic function of
   ``qa.reading.FEATURES``, and the abstention threshold that makes the most right
   decisions (answer a right answer, decline the rest) over
   - the answers (every language pair: label = the answer sentence holds a gold answer),
   - near misses: the same questions against their corpus *without their own paragraph*
     (the article's other paragraphs, on the same topic and in the same words, do not
     answer them; SQuAD 2.0's kind of unanswerable question; label 0),
   - off-topic: the same questions against the bundled sources (label 0); the other half's
     are eval/off-topic.jsonl, which the eval reports.

The project's eval sets and the other half of XQuAD dev are never read here.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from qa.config import READER_CONFIDENCE, Settings
from qa.datasets import XQUAD_DEV, EvalItem, EvalSet, eval_item, item_half, load_dataset, off_topic_rows
from qa.embedding import load_encoder
from qa.index import build, open_index
from qa.metrics import contains
from qa.pipeline import QAService
from qa.questions import resolve_follow_up
from qa.reader import Reader
from qa.reading import FEATURES, Candidate, Packing, ReadingAnswerer, Selection
from qa.types import Document

# The weight of each kind of negative against the on-topic answers: the prior that a
# public widget's questions are about a tenth near misses and a fifth off-topic.
NEAR_MISS_SHARE = 0.15
OFF_TOPIC_SHARE = 0.25
# The span-choice grid (``Selection``'s weights).
GRID = {"retrieval": (0.0, 10.0, 20.0, 40.0, 80.0, 160.0),
        "rank": (0.0, -0.5, -1.0, -2.0), "same_lang": (0.0, 0.5, 1.0, 2.0), "sentence": (0.0, 2.5, 5.0, 10.0, 20.0)}
# The packings tried (``qa.reading.Packing``): windows of 160 word pieces (~44 ms on two
# cores, for the latency target), sentences chosen from 2-5 passages by their cosine, the
# question's words they hold (weight 0.5) and their passage's rank. Earlier fits settled the
# rest: 160 pieces against 224 (0.794 against 0.767 right answers) and 128-288; the words'
# share 0.5 against none (0.794 against 0.766); the next sentence added whole, never; a
# sentence after a close one taking 0.8 of its closeness raised the windows holding a gold
# answer (0.883 -> 0.904, 1,000 half-0 questions asked of articles) but not the right answers
# (0.7922 against 0.7984 with rank -0.05, 2 passages; lower with every other setting), so it
# is no longer tried.
PACKINGS = tuple(Packing(p, 160, 0.5, rank) for p in (2, 3, 5) for rank in (0.0, -0.05, -0.1))
ORDERS = ("earlier-first", "current-first")


@dataclass(frozen=True)
class Reading:
    """One question's candidates and, for each, whether its answer sentence holds a gold answer."""

    kind: str
    cands: tuple[Candidate, ...]
    right: tuple[bool, ...]


def read_items(answerer: ReadingAnswerer, service: QAService, items: list[EvalItem], kind: str,
               near_miss: bool = False, order: str | None = None, packing: Packing | None = None) -> list[Reading]:
    out = []
    for it in tqdm(items, desc=kind, unit="q", file=sys.stderr, dynamic_ncols=True):
        qvec = service.encode_questions([(it.question, it.history)])[0]
        passages = service.retriever.search(resolve_follow_up(it.question, list(it.history)),
                                            service.settings.answer_passages + (2 if near_miss else 0), qvec=qvec)
        if near_miss:
            passages = [p for p in passages if p.chunk.doc_id not in it.doc_ids]
        cands = answerer.candidates(passages, it.question, qvec, it.history[-1] if it.history else None,
                                    follow_up=order, selection=Selection(), packing=packing)
        right = []
        for c in cands:
            a, b = answerer.sentences(c.doc_id, c.start, c.end)
            right.append(not near_miss and contains(answerer.index.docs[c.doc_id].text[a:b], it.answers))
        out.append(Reading(kind, tuple(cands), tuple(right)))
    return out


def choose(r: Reading, sel: Selection) -> tuple[list[Candidate], bool]:
    """The candidates best first under ``sel``, and whether the best is right."""
    values = [sel.value(c) for c in r.cands]
    order = sorted(range(len(r.cands)), key=lambda i: -values[i])
    ranked = [dataclasses.replace(r.cands[i], value=values[i]) for i in order]
    return ranked, bool(order) and r.right[order[0]]


def fit_selection(readings: list[Reading]) -> tuple[Selection, dict[str, float]]:
    scores = {}
    for key in itertools.product(*GRID.values()):
        scores[key] = float(np.mean([choose(r, Selection(*key))[1] for r in readings if r.cands]))
    best = max(scores, key=lambda k: scores[k])
    return Selection(*best), {"chosen": round(scores[best], 4), "span_score_alone": round(scores[(0.0,) * len(GRID)], 4)}


def fit_logistic(groups: dict[str, tuple[list[list[float]], list[float]]], shares: dict[str, float]) -> dict[str, Any]:
    """Weighted logistic regression (gradient descent on standardized inputs); each group
    weighs ``shares[group]`` of the on-topic group's total."""
    n_on = len(groups["on_topic"][0])
    xs, ts, ws, names = [], [], [], []
    for name, (x, targets) in groups.items():
        xs += x
        ts += targets
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
            "threshold": threshold, "right_decisions": dict(zip(map(str, grid), (round(r, 4) for r in right), strict=True)),
            "fit_set": summary}


def as_articles(es: EvalSet) -> EvalSet:
    """The benchmark with each article's paragraphs joined into one document (``<lang>:<title>``):
    the bundled sources are long documents of many chunks on one topic, XQuAD's paragraphs are
    short documents of one chunk each, and the span choice must be fitted among passages of
    one document as well as between documents."""
    articles: dict[str, list[Document]] = {}
    for d in es.docs or ():
        articles.setdefault(d.doc_id.rsplit(":", 1)[0], []).append(d)
    docs = tuple(Document(doc_id=k, text="\n\n".join(p.text for p in ps), lang=ps[0].lang, title=k.split(":", 1)[1])
                 for k, ps in articles.items())
    items = tuple(dataclasses.replace(it, doc_ids=tuple(dict.fromkeys(d.rsplit(":", 1)[0] for d in it.doc_ids)))
                  for it in es.items)
    return dataclasses.replace(es, docs=docs, items=items)


def follow_ups(items: list[EvalItem]) -> list[EvalItem]:
    """Each question after the one before it about the same paragraph, as its follow-up."""
    prev: dict[tuple[str, ...], str] = {}
    out = []
    for it in items:
        if it.doc_ids in prev:
            out.append(dataclasses.replace(it, history=(prev[it.doc_ids],)))
        prev[it.doc_ids] = it.question
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qa.fit_confidence", description=__doc__.split("\n\n")[0])
    ap.add_argument("--xquad", type=Path, default=XQUAD_DEV)
    ap.add_argument("--reader", type=Path, required=True,
                    help="a reader not trained on the --half articles (python -m qa.train_reader --xquad-half 1-H)")
    ap.add_argument("--half", type=int, choices=(0, 1), default=0, help="XQuAD dev's articles fitted on")
    ap.add_argument("--out", type=Path, default=READER_CONFIDENCE)
    ap.add_argument("--near-misses", type=int, default=160, help="near misses read a language pair")
    ap.add_argument("--articles", type=int, default=200,
                    help="questions read a language pair against the articles joined into long documents")
    ap.add_argument("--packing-questions", type=int, default=80,
                    help="questions a language pair and shape (paragraphs, articles) each packing is tried on")
    ap.add_argument("--follow-ups", type=int, default=120, help="follow-up pairs read a language")
    ap.add_argument("--limit", type=int, default=0, help="first N questions of each setting (a quick look)")
    ap.add_argument("--cache", type=Path, help="keep what was read here (pickle), and fit from it when it exists: the "
                                               "reading takes ~20 minutes, the fit seconds")
    args = ap.parse_args(argv)
    if args.cache and args.cache.is_file():
        with args.cache.open("rb") as f:
            readings = pickle.load(f)  # a file this command wrote
        return write(fit_all(readings), args)
    readings = read_all(args)
    if args.cache:
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        with args.cache.open("wb") as f:
            pickle.dump(readings, f)
    return write(fit_all(readings), args)


@dataclass(frozen=True)
class Readings:
    """What the fits read: answers, near misses, follow-ups (by order), off-topic, with the
    packing chosen first and each packing's share of right answers."""

    on: list[Reading]
    near: list[Reading]
    follow: dict[str, list[Reading]]
    off: list[Reading]
    packing: dict[str, int]
    packing_fit: dict[str, float]


def read_all(args: argparse.Namespace) -> Readings:
    """Everything the fits need, read once."""
    settings = Settings(answerer="reader")
    encoder = load_encoder(settings.embedding_model, settings.embedding_threads)
    reader = Reader.load(args.reader, settings.reader_precision)
    fitted: dict[str, Any] = {"weights": {}}
    def service_of(es: EvalSet) -> QAService:
        return QAService(build(list(es.docs or ()), encoder, settings, clean=False), encoder, settings, reader=reader)

    # each setting's questions, its articles (joined paragraphs) and a service on each shape
    sets: list[tuple[EvalSet, list[EvalItem], EvalSet, QAService, QAService]] = []
    for es in load_dataset(args.xquad, {}, ("same", "cross")):
        items = [it for it in es.items if item_half(it) == args.half]
        items = items[:args.limit] if args.limit else items
        long = as_articles(dataclasses.replace(es, items=tuple(items)))
        sets.append((es, items, long, service_of(es), service_of(long)))
    # the packing first, on questions asked of the paragraphs and of the articles, by the
    # share of right answers under the best span choice for it; then everything is read with it
    packing_fit = {}
    for pk in PACKINGS:
        tried = [r for es, items, long, short, service in sets for shape, svc, its in
                 (("paragraphs", short, items), ("articles", service, list(long.items)))
                 for r in read_items(ReadingAnswerer(svc.index, reader, fitted=fitted), svc,
                                     its[:args.packing_questions], f"{es.setting} {shape}, {pk}", packing=pk)]
        packing_fit[json.dumps(dataclasses.asdict(pk))] = fit_selection(tried)[1]["chosen"]
        n = len(tried)
    # the cheapest window (fewest pieces) within a standard error of the best, and of those
    # the best packing: a window's pieces are the answer's cost (a 224-piece window on one
    # thread ~95 ms, 160 ~74), while more passages and the words' share only add a few
    # sentences' cosines and word sets (cached) to compute
    best = max(packing_fit.values())
    close = [k for k, v in packing_fit.items() if v >= best - math.sqrt(best * (1 - best) / n)]
    fitted["packing"] = json.loads(min(close, key=lambda k: (json.loads(k)["window_tokens"], -packing_fit[k])))
    on: list[Reading] = []
    near: list[Reading] = []
    follow: dict[str, list[Reading]] = {o: [] for o in ORDERS}
    for es, items, long, short, service in sets:
        answerer = ReadingAnswerer(short.index, reader, fitted=fitted)
        on += read_items(answerer, short, items, f"{es.setting} answers, paragraphs")
        near += read_items(answerer, short, items[:args.near_misses], f"{es.setting} near misses", near_miss=True)
        answerer = ReadingAnswerer(service.index, reader, fitted=fitted)
        on += read_items(answerer, service, list(long.items)[:args.articles], f"{es.setting} answers, articles")
        if es.setting.split("→")[0] == es.setting.split("→")[1]:
            pairs = follow_ups(list(long.items))[:args.follow_ups]
            for o in ORDERS:
                follow[o] += read_items(answerer, service, pairs, f"{es.setting} follow-ups, {o}", order=o)
    bundled = QAService(open_index(settings), encoder, settings, reader=reader)
    off_items = [eval_item(r, {}) for r in off_topic_rows(args.xquad, args.half)]
    off = read_items(ReadingAnswerer(bundled.index, reader, fitted=fitted), bundled,
                     off_items[:args.limit * 2] if args.limit else off_items, "off-topic")
    return Readings(on, near, follow, off, fitted["packing"], packing_fit)


def fit_all(r: Readings) -> dict[str, Any]:
    on, near, follow, off = r.on, r.near, r.follow, r.off
    selection, chosen = fit_selection(on)
    follow_scores = {o: round(float(np.mean([choose(r, selection)[1] for r in follow[o] if r.cands])), 4) for o in ORDERS}
    order = max(ORDERS, key=lambda o: follow_scores[o])

    def rows(readings: list[Reading]) -> tuple[list[list[float]], list[float]]:
        x, y = [], []
        for r in readings:
            if r.cands:
                ranked, right = choose(r, selection)
                feats = ReadingAnswerer.features(ranked)
                x.append([feats[f] for f in FEATURES])
                y.append(float(right))
        return x, y

    result = fit_logistic({"on_topic": rows(on), "near_miss": rows(near), "off_topic": rows(off)},
                          {"near_miss": NEAR_MISS_SHARE, "off_topic": OFF_TOPIC_SHARE})
    return {"packing": r.packing, "packing_fit": r.packing_fit, "selection": dataclasses.asdict(selection),
            "selection_fit": chosen,
            "follow_up": order, "follow_up_fit": follow_scores, **result}


def write(result: dict[str, Any], args: argparse.Namespace) -> int:
    result = {"fitted_on": f"XQuAD dev, the articles of half {args.half} (answers of every language pair, near misses, "
                           "follow-up pairs, off-topic against the bundled sources), read by a reader not trained on "
                           "them (python -m qa.fit_confidence)",
              "reader": args.reader.name, **result}
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

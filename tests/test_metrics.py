"""The metric code itself: SQuAD normalization in both languages, EM/F1 (equal to the
official v1.1 script on English), containment, ranking, abstention counting, the
coverage curve and the threshold gate."""

from __future__ import annotations

import json
import re
import string
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.config import PROJECT_ROOT
from qa.evaluation import check_thresholds, coverage_curve, summarize
from qa.metrics import (
    abstention_metrics,
    best_over_golds,
    contains,
    exact_match,
    f1,
    normalize_answer,
    percentile,
    ranking_metrics,
)


# --- The official SQuAD v1.1 evaluation functions, verbatim (evaluate-v1.1.py) ---
def official_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def official_exact_match_score(prediction, ground_truth):
    return official_normalize_answer(prediction) == official_normalize_answer(ground_truth)


# ---------------------------------------------------------------------------------


def _xquad_en_pairs() -> list[tuple[str, str]]:
    """(prediction, gold) pairs from real XQuAD English data: the gold itself, the
    gold with its neighbouring words, and a window that misses part of it."""
    data = json.loads((PROJECT_ROOT / "eval" / "xquad-dev" / "xquad.en.json").read_text(encoding="utf-8"))["data"]
    pairs = []
    for article in data:
        for para in article["paragraphs"]:
            ctx = para["context"]
            for q in para["qas"]:
                a = q["answers"][0]
                s, e = a["answer_start"], a["answer_start"] + len(a["text"])
                pairs += [(a["text"], a["text"]), (ctx[max(0, s - 20): e + 15], a["text"]),
                          (ctx[s + len(a["text"]) // 2: e + 30], a["text"]), (ctx[max(0, s - 60): s], a["text"])]
    return pairs


def test_english_matches_the_official_script_on_xquad():
    pairs = _xquad_en_pairs()
    assert len(pairs) > 1000
    for pred, gold in pairs:
        assert normalize_answer(pred, "en") == official_normalize_answer(pred)
        assert exact_match(pred, gold, "en") == float(official_exact_match_score(pred, gold))
        assert f1(pred, gold, "en") == pytest.approx(official_f1_score(pred, gold))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("the an a Fox, 2016! ($5.5) \"q\" -—"))), st.text(max_size=30))
def test_english_matches_the_official_script_on_generated_text(pred, gold):
    assert normalize_answer(pred, "en") == official_normalize_answer(pred)
    assert f1(pred, gold, "en") == pytest.approx(official_f1_score(pred, gold))
    assert exact_match(pred, gold, "en") == float(official_exact_match_score(pred, gold))


def test_known_english_scores():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    # 2 shared tokens of 3 predicted and 2 gold: P = 2/3, R = 1, F1 = 0.8
    assert f1("Denver Broncos team", "Denver Broncos") == pytest.approx(0.8)
    assert f1("Carolina Panthers", "Denver Broncos") == 0.0
    assert best_over_golds("em", "Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert best_over_golds("f1", None, ["x"]) == 0.0


def test_russian_normalization_handles_typographic_punctuation_and_yo():
    assert normalize_answer("«Технополис» — Москва…", "ru") == "технополис москва"
    assert normalize_answer("Ещё „два“ корпуса!", "ru") == "еще два корпуса"
    # no article removal: these words are not articles in a Russian answer
    assert normalize_answer("the a an", "ru") == "the a an"
    # the language is read off the gold answer when not given
    assert exact_match("«Технополис Москва»", "Технополис «Москва»") == 1.0
    assert f1("особая экономическая зона «Технополис»", "ОЭЗ «Технополис»") == pytest.approx(2 * (1 / 4) * (1 / 2) / (3 / 4))


def test_containment_is_by_whole_normalized_tokens():
    golds = ["30,000 sq. meters"]
    assert contains("The office premises of 30,000 sq. meters are rebuilt.", golds)
    assert contains("premises of 30,000 sq.\nmeters", golds)
    assert not contains("It was built in 2016.", ["201"])
    assert contains("Открыт в 2016 г.", ["2016 г."])
    assert contains("Резидентов — «сорок два».", ["сорок два"])
    assert not contains(None, golds) and not contains("", golds)
    assert contains("Six-time Grammy winner Lady Gaga", ["Six"])
    assert contains("heard that it was ‘often damaging’, along with", ["often damaging"])
    assert not contains("Sixtime winner", ["Six"])


def test_ranking_metrics():
    m = ranking_metrics([1, 2, None, 6])
    assert m["recall@1"] == 0.25 and m["recall@5"] == 0.5
    assert m["mrr"] == pytest.approx((1 + 0.5 + 1 / 6) / 4)
    # a set of unanswerable questions has no ranks: its rates are undefined, not 0
    assert ranking_metrics([]) == {"recall@1": None, "recall@5": None, "mrr": None, "questions": 0}


def test_abstention_counting():
    # abstained:  T     T     F     F     T
    # answerable: F     T     F     T     F
    m = abstention_metrics([True, True, False, False, True], [False, True, False, True, False])
    assert (m["abstained"], m["unanswerable"], m["false_abstentions"], m["answered_unanswerable"]) == (3, 3, 1, 1)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    never = abstention_metrics([False, False], [False, True])
    assert never["precision"] is None and never["recall"] == 0.0 and never["f1"] == 0.0
    none_unanswerable = abstention_metrics([False], [True])
    assert none_unanswerable["recall"] is None and none_unanswerable["f1"] is None


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) == 0.0


def _record(answerable: bool, candidate: str | None, conf: float, golds: list[str], threshold: float = 0.5) -> dict:
    abstained = candidate is None or conf < threshold
    shown = None if abstained else candidate
    return {"answerable": answerable, "candidate": candidate, "confidence": conf, "abstained": abstained,
            "answer": shown, "gold_answers": golds, "gold_rank": 1 if answerable else None, "lang": "en",
            "pair": "en→en" if answerable else "en→none", "category": "date", "latency_ms": 2.0,
            "correct": {"contains": contains(shown, golds), "em": 0.0, "f1": 0.0, "citation": contains(shown, golds)}}


def test_summary_and_coverage_curve_from_records():
    records = [
        _record(True, "Founded in 2012.", 0.9, ["2012"]),
        _record(True, "Founded in 2019.", 0.6, ["2012"]),
        _record(True, "Founded in 2012.", 0.3, ["2012"]),  # right, but below the threshold: abstained
        _record(False, "Some other sentence.", 0.2, []),
        _record(False, "Another sentence.", 0.7, []),
    ]
    m = summarize(records)
    assert m["answers"]["containment@1"] == pytest.approx(1 / 3)
    assert m["abstention"]["precision"] == pytest.approx(0.5) and m["abstention"]["recall"] == pytest.approx(0.5)
    curve = {row["threshold"]: row for row in m["coverage_curve"]}
    assert curve[0.0]["coverage"] == 1.0 and curve[0.0]["accuracy"] == pytest.approx(2 / 3)
    assert curve[0.0]["abstention_recall"] == 0.0 and curve[0.0]["abstention_precision"] is None
    assert curve[0.5]["coverage"] == pytest.approx(2 / 3) and curve[0.5]["accuracy"] == pytest.approx(0.5)
    assert curve[0.8]["coverage"] == pytest.approx(1 / 3) and curve[0.8]["accuracy"] == 1.0
    assert curve[0.8]["abstention_recall"] == 1.0 and curve[0.8]["abstention_precision"] == pytest.approx(0.5)
    assert coverage_curve(records) == m["coverage_curve"]
    assert m["by_pair"]["en→none"]["abstention_recall"] == pytest.approx(0.5)
    assert m["by_pair"]["en→en"]["containment@1"] == pytest.approx(1 / 3)


def test_threshold_gate_fails_on_a_drop_and_on_a_missing_metric():
    results = {"set": {"bundled sources": {"fused": {"answers": {"containment@1": 0.9}, "abstention": None}}}}
    ok, n = check_thresholds(results, {"set": {"bundled sources": {"fused": {"answers.containment@1": 0.85}}}})
    assert ok == [] and n == 1
    low, _ = check_thresholds(results, {"set": {"bundled sources": {"fused": {"answers.containment@1": 0.95}}}})
    assert len(low) == 1 and "0.9000 < threshold 0.95" in low[0]
    missing, _ = check_thresholds(results, {"set": {"bundled sources": {"fused": {"abstention.recall": 0.5}}}})
    assert "not measured" in missing[0]
    skipped, n = check_thresholds(results, {"other": {"x": {"fused": {"answers.f1": 1}}}, "_note": "ignored"})
    assert skipped == [] and n == 0

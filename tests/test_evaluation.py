"""The eval harness end to end: dataset loading (JSONL and parallel SQuAD files),
records, metrics keys, the report files and the threshold gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa import cli
from qa.datasets import DatasetError, load_dataset, load_jsonl, load_squad_group
from tests.test_cli import _env

DATA = Path(__file__).parent / "data"
DOC_LANGS = {"alpha-technopark": "en", "moscow-technoparks": "ru", "gamma-cluster": "ru"}


def _squad(path: Path, title: str, context: str, qas: list[tuple[str, str, str]]) -> Path:
    data = {"data": [{"title": title, "paragraphs": [{"context": context, "qas": [
        {"id": qid, "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]} for qid, q, a in qas]}]}]}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture()
def squad_pair(tmp_path: Path) -> Path:
    d = tmp_path / "bench"
    d.mkdir()
    _squad(d / "bench.en.json", "Alpha", "Technopark Alpha was founded in 2012 and employs 454 people.",
           [("q1", "When was Alpha founded?", "2012"), ("q2", "How many people work at Alpha?", "454")])
    _squad(d / "bench.ru.json", "Alpha", "Технопарк «Альфа» основан в 2012 году, в нём работают 454 человека.",
           [("q1", "Когда основан «Альфа»?", "2012 году"), ("q2", "Сколько людей работает в «Альфе»?", "454 человека")])
    return d


def test_parallel_squad_files_give_same_cross_and_mixed_settings(squad_pair):
    sets = {s.setting: s for s in load_squad_group(sorted(squad_pair.glob("*.json")))}
    assert set(sets) == {"en→en", "ru→ru", "en→ru", "ru→en", "mixed"}
    en_ru = sets["en→ru"]
    # an English question against the Russian corpus is scored on the Russian answer
    assert en_ru.items[0].question == "When was Alpha founded?"
    assert en_ru.items[0].answers == ("2012 году",) and en_ru.items[0].doc_ids == ("ru:Alpha:0",)
    assert all(d.lang == "ru" for d in en_ru.docs)
    mixed = sets["mixed"]
    assert len(mixed.items) == 4 and len(mixed.docs) == 2
    assert set(mixed.items[0].doc_ids) == {"en:Alpha:0", "ru:Alpha:0"}
    assert mixed.items[0].pair == "en→en+ru"
    only_same = load_squad_group(sorted(squad_pair.glob("*.json")), kinds=("same",))
    assert [s.setting for s in only_same] == ["en→en", "ru→ru"]


def test_jsonl_set_pairs_and_errors(tmp_path):
    es = load_jsonl(DATA / "tiny-eval.jsonl", DOC_LANGS)
    assert [i.pair for i in es.items] == ["en→en", "ru→ru", "en→ru", "en→none"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "q", "lang": "en", "answers": [], "doc_ids": ["nope"], "answerable": true}\n')
    with pytest.raises(DatasetError, match="unknown doc_ids"):
        load_jsonl(bad, DOC_LANGS)
    bad.write_text("{not json\n")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:1"):
        load_jsonl(bad, DOC_LANGS)
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "missing.jsonl", DOC_LANGS)


def test_qa_eval_json_records_report_and_gate(monkeypatch, settings, tmp_path, capsys, squad_pair):
    _env(monkeypatch, settings)
    out = tmp_path / "out"
    rc = cli.main(["eval", "--dataset", str(DATA / "tiny-eval.jsonl"), "--dataset", str(squad_pair),
                   "--json", "--out", str(out), "--report"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    runs = report["datasets"]["tiny-eval"]["bundled sources"]
    assert set(runs) == {"fused", "bm25", "dense", "first-sentence"}
    m = runs["fused"]
    for key in ("retrieval", "answers", "abstention", "latency_ms", "by_lang", "by_pair", "by_category", "coverage_curve"):
        assert key in m
    assert set(m["retrieval"]) == {"recall@1", "recall@5", "mrr"}
    assert set(m["answers"]) >= {"containment@1", "em", "f1", "citation_accuracy"}
    assert set(m["abstention"]) >= {"precision", "recall", "f1"}
    assert set(m["by_pair"]) == {"en→en", "ru→ru", "en→ru", "en→none"}
    assert m["retrieval"]["recall@1"] >= 2 / 3  # the tiny corpus is easy: a real retrieval must find these
    assert set(report["datasets"]["bench"]) == {"en→en", "ru→ru", "en→ru", "ru→en", "mixed"}
    # every record is inspectable and its citations are verbatim source ranges
    records = [json.loads(line) for line in (out / "records" / "tiny-eval.bundled-sources.fused.jsonl").open(encoding="utf-8")]
    assert [r["id"] for r in records] == ["t-en", "t-ru", "t-xl", "t-na"]
    for r in records:
        assert {"question", "gold_answers", "answer", "citations", "correct", "latency_ms"} <= set(r)
        for c in r["citations"]:
            src = (settings.sources_dir / f"{c['doc_id']}.txt").read_text(encoding="utf-8")
            assert src[c["start"]:c["end"]] == c["quote"]
    assert (out / "report.md").read_text(encoding="utf-8").startswith("# QA evaluation report")
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["datasets"].keys() == report["datasets"].keys()

    gate = tmp_path / "thresholds.json"
    gate.write_text(json.dumps({"tiny-eval": {"bundled sources": {"fused": {"retrieval.recall@5": 0.5}}}}))
    assert cli.main(["eval", "--dataset", str(DATA / "tiny-eval.jsonl"), "--gate", str(gate)]) == 0
    gate.write_text(json.dumps({"tiny-eval": {"bundled sources": {"fused": {"retrieval.recall@5": 1.01}}}}))
    assert cli.main(["eval", "--dataset", str(DATA / "tiny-eval.jsonl"), "--gate", str(gate)]) == 1
    assert "below threshold" in capsys.readouterr().err


def test_follow_up_set_keeps_its_history_and_a_baseline_without_it(monkeypatch, settings, tmp_path, capsys):
    es = load_jsonl(DATA / "tiny-follow-ups.jsonl", DOC_LANGS)
    assert es.items[0].history == ("Какова площадь промышленного корпуса в столице?",)
    _env(monkeypatch, settings)
    out = tmp_path / "out"
    assert cli.main(["eval", "--dataset", str(DATA / "tiny-follow-ups.jsonl"), "--json", "--out", str(out)]) == 0
    runs = json.loads(capsys.readouterr().out)["datasets"]["tiny-follow-ups"]["bundled sources"]
    # follow-ups are also asked without their history: what resolving them is worth
    assert set(runs) == {"fused", "bm25", "dense", "first-sentence", "fused-no-history"}
    with_history, without = ([json.loads(line) for line in (out / "records" / f"tiny-follow-ups.bundled-sources.{name}.jsonl")
                              .open(encoding="utf-8")] for name in ("fused", "fused-no-history"))
    assert [r["history"] for r in with_history] == [list(it.history) for it in es.items]
    assert all(r["history"] == [] for r in without)
    # the Russian follow-up is only answerable with its history ("их" = the residents' money)
    assert with_history[0]["correct"]["contains"]
    # (a set without follow-ups runs no such baseline: test_qa_eval_json_records_report_and_gate
    # asserts tiny-eval's four systems)


def test_follow_up_history_must_be_questions(tmp_path):
    bad = tmp_path / "bad.jsonl"
    row = {"id": "x", "question": "And when?", "lang": "en", "answers": ["2012"], "doc_ids": ["alpha-technopark"],
           "answerable": True}
    for history in ("When was Alpha founded?", [""], [3]):
        bad.write_text(json.dumps({**row, "history": history}) + "\n", encoding="utf-8")
        with pytest.raises(DatasetError, match="history must be a list"):
            load_jsonl(bad, DOC_LANGS)


def test_qa_eval_bad_input_exits_2(monkeypatch, settings, tmp_path, capsys):
    _env(monkeypatch, settings)
    assert cli.main(["eval", "--dataset", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["eval", "--report"]) == 2
    assert "--report needs --out" in capsys.readouterr().err
    bad = tmp_path / "t.json"
    bad.write_text("{")
    assert cli.main(["eval", "--dataset", str(DATA / "tiny-eval.jsonl"), "--gate", str(bad)]) == 2

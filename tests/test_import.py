"""Adding documents: extraction per format on files made here, the bad files support staff
run into, doc ids, atomic writes, the page map, and `qa add`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import qa.importing
from qa import cli
from qa.config import Settings
from qa.extract import extract_docx, extract_html, extract_markdown, extract_pdf, extract_txt
from qa.importing import ImportRefused, doc_id_for, list_sources, prepare, remove_source, write_source
from qa.sources import SourceError, load_document, load_documents
from tests.documents import (
    DATA,
    MARKDOWN,
    NEWS_EN,
    NEWS_RU,
    RU_TEXT,
    encrypt_pdf,
    make_broken_docx,
    make_docx,
    make_pdf,
    make_scanned_pdf,
    make_zip_bomb,
    make_zip_without_document,
)

# The hand-made news pages: every sentence of the article, and every line of furniture.
ARTICLE_EN = [
    "The capital's Technopark is ranked first in the federal rating for the sixth year in a row",
    'Technopark "TechnoSpark" took the first place in the 7th National Rating of Technoparks of Russia prepared by the '
    "Association of Clusters, Technoparks and Special Economic Zones of Russia.",
    "When determining the leader, experts analyzed 21 indicators related to the innovation activity and economic "
    "activity of residents.",
    '"TechnoSpark" became the leader among all similar organizations in Russia by all indicators, said Alexey Fursin, '
    "Head of Moscow Department of Entrepreneurship and Innovative Development.",
    "TechnoSpark was established in 2012.",
    "Now there are 95 companies operating on its territory, and 454 new jobs were created.",
    "The main activities of the technopark residents are robotics, photovoltaics, flexible electronics, genetics and "
    "biotechnology.",
    "Today there are 39 technoparks operating in the capital.",
    "Over 2,090 high-tech companies are located there employing more than 68 thousand people.",
]
JUNK_EN = ["Mayor", "Culture and leisure", "Transport", "Contacts", "Search the portal", "Home", "Share on VK",
           "Share on Telegram", "#technoparks", "#rating", "Most popular", "Light as a means of expression opens at the Manege",
           "A thousand years of Russian art on show this winter", "New tram routes launched in the north of the city",
           "Skating rinks open in twelve city parks", "Metro stations to get new ventilation by spring",
           "Related news", "Moscow technoparks report record exports for the quarter",
           "City opens a startup studio programme for students", "Industrial parks to receive new tax breaks next year",
           "All rights reserved", "Privacy policy", "Terms of use", "Site map", "Editorial office",
           "Subscribe to our newsletter", "you are agreeing to accept the use of cookies", "Accept cookies",
           "dataLayer", "gtag", "cookie-banner", "addEventListener", "position: fixed"]
ARTICLE_RU = [
    "ОЭЗ «Технополис Москва» стала лидером по эффективности среди особых экономических зон России",
    "Особая экономическая зона «Технополис Москва» заняла первое место в рейтинге эффективности функционирования "
    "особых экономических зон, который ежегодно составляет Министерство экономического развития России.",
    "По словам заместителя мэра Москвы Владимира Ефимова, резиденты ОЭЗ с начала работы вложили в развитие "
    "производств более 100 миллиардов рублей.",
    "На площадках ОЭЗ работают 124 компании, которые создали свыше 8,5 тысячи рабочих мест.",
    "Резиденты особой экономической зоны получают налоговые льготы и работают в режиме свободной таможенной зоны.",
]
JUNK_RU = ["Главная", "Наш город", "Городская недвижимость", "Культурный город", "Интервью", "Другие города",
           "Самое популярное", "Геометрическое наследие", "Архитектура, дизайн и урбанистика",
           "Без колебаний", "Стратегический актив", "Чудо на льду", "Читайте также", "Портфель для инвестора",
           "Курс на стабилизацию", "Все права защищены", "О редакции", "Реклама", "Контакты", "файлы cookie",
           "Хорошо", "analytics", "_tmr"]

# Every hand-made page (bench/html_extractors.py measures the extractors on them): its
# language, its article's sentences (and table cells), and its furniture.
PAGES: dict[str, tuple[str, list[str], list[str]]] = {
    "news-en.html": ("en", ARTICLE_EN, JUNK_EN),
    "news-ru.html": ("ru", ARTICLE_RU, JUNK_RU),
    "press-release-en.html": ("en", [
        "Technopolis Moscow opens a collective use centre for microelectronics",
        "The special economic zone Technopolis Moscow has opened a collective use centre for microelectronics at its "
        "Pechatniki site.",
        "The centre has two clean rooms of class ISO 5 with a total area of 800 square metres, and residents can rent "
        "equipment by the hour.",
        "According to the director general of the zone, 14 resident companies have already booked time in the centre "
        "for the first quarter.",
        "Electron beam lithograph", "Plasma etcher", "Wafer prober",
        "The centre was built with the support of the Moscow Department of Investment and Industrial Policy and cost "
        "2.1 billion roubles.",
    ], ["Skip to content", "About the zone", "How to become a resident", "Press centre", "Main page", "Copy link",
        "LinkedIn", "Subscribe to the newsletter", "Your e-mail", "We send news of the zone once a week",
        "Latest news", "exported goods to 40 countries", "lidar sensors", "delegation from Kazakhstan",
        "Tax benefits for residents extended", "All news", "Volgogradsky Avenue", "+7 495", "Use of materials",
        "uses cookies", "Learn more", "googletagmanager", "ym(12345"]),
    "district-news-ru.html": ("ru", [
        "Технополис привлек еще 10 компаний",
        "Особая экономическая зона «Технополис Москва» в Печатниках пополнилась десятью новыми резидентами.",
        "Среди новых резидентов — компания «НеоФотоникс», которая производит оптоэлектронные компоненты для "
        "телекоммуникаций.",
        "Всего в ОЭЗ зарегистрировано 34 компании, а объем их инвестиций превысил 20 миллиардов рублей.",
        "Резиденты получают льготы по налогу на имущество, земельному и транспортному налогам на 10 лет.",
    ], ["Управа района Печатники", "Официальный сайт", "RSS", "О районе", "ЖКХ", "Афиша", "Теги", "Просмотров",
        "Новости по теме", "отремонтируют дворы", "праздник в парк", "новую поликлинику", "Комментарии",
        "Отличная новость", "новую станцию метро", "Ваш комментарий", "Отправить", "Госуслуги рядом", "Опрос",
        "Где вы гуляете", "Карта сайта", "Обратная связь", "улица Гурьянова, 2", "файлы cookie", "Принять",
        "slick", "margin-top"]),
}

PDF_PAGES = [
    ["Technopark Omega was founded in 2015 by the city of Moscow as a centre for photonics and optical "
     "engineering, with its first building on Varshavskoye highway next to the river port."],
    ["In 2020 the technopark had 45 resident companies employing 2,300 people in laboratories, "
     "workshops and offices spread over four buildings."],
    ["Технопарк «Омега» открыл центр коллективного пользования в 2022 году; в нём работают "
     "электронные микроскопы и чистые комнаты для резидентов."],
]


@pytest.fixture()
def fast(tmp_path: Path) -> Settings:
    """Settings over an empty sources folder (nothing indexed: these tests build no index)."""
    src = tmp_path / "new-sources"
    src.mkdir()
    return Settings(sources_dir=src, index_dir=tmp_path / "new-index")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------ extraction per format


@pytest.mark.parametrize(("page", "article", "junk", "meta"), [
    (NEWS_EN, ARTICLE_EN, JUNK_EN, {"lang": "en", "date": "2021-11-07", "publisher": "Moscow City Portal",
                                    "url": "https://city.example.org/en/news/technospark-rating"}),
    (NEWS_RU, ARTICLE_RU, JUNK_RU, {"lang": "ru", "date": "2023-06-15", "publisher": "Городской вестник",
                                    "url": "https://vestnik.example.ru/news/technopolis-leader"}),
])
def test_a_news_page_keeps_every_article_sentence_and_no_junk(page, article, junk, meta):
    got = extract_html(page.read_bytes())
    for sentence in article:
        assert sentence in got.text, sentence
    for line in junk:
        assert line not in got.text, line
    assert got.meta["title"] == article[0]
    assert got.text.startswith(article[0])
    for k, v in meta.items():
        assert got.meta[k] == v
    # one paragraph a line: each sentence is on one line (answers never cross a line break)
    assert all(any(s in line for line in _lines(got.text)) for s in article)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_hand_made_page_keeps_its_article_and_drops_its_furniture(page):
    lang, article, junk = PAGES[page]
    got = extract_html((DATA / page).read_bytes())
    assert [s for s in article if s not in got.text] == []
    assert [j for j in junk if j in got.text] == []
    assert got.meta["lang"] == lang


def test_pdf_text_page_by_page_with_its_page_map_and_metadata():
    data = make_pdf(PDF_PAGES, title="Omega in figures", author="Omega press office", headings=["One", "Two", "Три"])
    got = extract_pdf(data)
    assert len(got.pages) == 3 and got.pages[0] == 0
    bounds = [*got.pages, len(got.text)]
    for n, paragraphs in enumerate(PDF_PAGES):
        page_text = got.text[bounds[n]:bounds[n + 1]]
        for para in paragraphs:
            # the wrapped lines of a paragraph come back as one line, on its own page
            assert para in page_text
            assert para in _lines(page_text)
    assert got.meta == {"page_count": 3, "title": "Omega in figures", "author": "Omega press office",
                        "date": "2024-03-15"}


def test_running_headers_footers_and_page_numbers_are_left_out():
    pages = [*PDF_PAGES, ["Technopark Omega plans a fourth building with 12,000 square metres of laboratories."]]
    got = extract_pdf(make_pdf(pages, running="Technopark Omega | Annual report 2024"))
    assert "Annual report 2024" not in got.text and "Page " not in got.text and " of 4" not in got.text
    bounds = [*got.pages, len(got.text)]
    for n, paragraphs in enumerate(pages):
        assert _lines(got.text[bounds[n]:bounds[n + 1]]) == paragraphs


def test_a_hyphenated_line_end_is_joined_whole():
    from qa.extract import _reflow

    lines = ["The technopark opened a labo-", "ratory for microelectronics in 2021, the first of its kind in", "Moscow."]
    assert _reflow("\n".join(lines)) == ["The technopark opened a laboratory for microelectronics in 2021, "
                                         "the first of its kind in Moscow."]


def test_docx_headings_lists_and_tables_become_lines_and_headers_are_left_out():
    got = extract_docx(make_docx(language="ru-RU"))
    lines = _lines(got.text)
    assert lines[0] == "Technopark Omega in 2023"
    assert "Technopark Omega opened its clean room for microelectronics in May 2023. The clean room covers 1,200 " \
           "square metres." in lines
    assert "- photonics and lasers" in lines and "- sign the lease" in lines
    assert "| Year | Residents | Jobs |" in lines and "| 2023 | 57 | 2,700 |" in lines
    assert "The director of Technopark Omega is Irina Volkova." in lines
    assert "confidential header" not in got.text and "Page footer" not in got.text
    assert got.meta == {"title": "Technopark Omega annual report", "author": "Omega press office", "lang": "ru",
                        "date": "2024-02-20"}


def test_markdown_without_its_markup():
    got = extract_markdown(MARKDOWN.encode())
    lines = _lines(got.text)
    assert lines[0] == "Visiting Technopark Omega"
    assert "Technopark Omega is open to visitors on weekdays from 9:00 to 18:00. See the map." in lines
    assert {"1. Take the metro to Omega station.", "2. Walk 300 metres north to the main gate.",
            "- Parking is free for visitors.", "| Lab block | 9:00 |", "gate code: not needed on weekdays"} <= set(lines)
    for markup in ("**", "](", "entrance.png", "raw html block", "---", "title:"):
        assert markup not in got.text
    assert got.meta == {"title": "Omega visitor guide", "date": "2024-04-01", "lang": "en"}


def test_text_in_a_legacy_encoding_is_converted():
    assert extract_txt(RU_TEXT.encode("cp1251")).text == RU_TEXT
    assert extract_txt(("\ufeff" + RU_TEXT.replace("\n", "\r\n")).encode()).text == RU_TEXT


def test_table_rows_are_content_not_a_headline_list():
    from qa.cleaning import content_spans

    text = extract_docx(make_docx()).text
    kept = "".join(text[s.start:s.end] for s in content_spans(text))
    assert "| 2022 | 48 | 2,250 |" in kept


# ------------------------------------------------------------------ bad files (through the bounded child)


BAD_FILES = [
    ("damaged.pdf", b"%PDF-1.7\n" + os.urandom(3000), "damaged"),
    ("header-only.pdf", b"%PDF-1.4\n%%EOF\n", "PDF"),
    ("not-a-pdf.pdf", b"<html><body>hello</body></html>", "not a PDF"),
    ("scan.pdf", None, "no text layer"),
    ("locked.pdf", None, "encrypted"),
    ("bomb.docx", None, "zip bomb"),
    ("not-a-zip.docx", b"PK\x03\x04 this is not really a zip archive" * 10, "not a zip"),
    ("other.docx", None, "not a Word document"),
    ("broken.docx", None, "DOCX is damaged"),
    ("binary.html", bytes(range(256)) * 40, "binary"),
    ("plain.html", b"Just a sentence that has no markup at all, twenty letters and more.", "no HTML markup"),
    ("empty-page.html", b"<html><body><nav><a href='/'>Home</a></nav></body></html>", "no (article )?text found"),
    ("binary.txt", b"\x00\x01\x02" * 100, "binary"),
    ("empty.md", b"", "empty"),
    ("tiny.md", b"# Hi", "no text"),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_refused_with_the_reason(fast, name, data, message):
    if data is None:
        data = {"scan.pdf": make_scanned_pdf, "bomb.docx": make_zip_bomb, "other.docx": make_zip_without_document,
                "broken.docx": make_broken_docx,
                "locked.pdf": lambda: encrypt_pdf(make_pdf(PDF_PAGES), "user-secret")}[name]()
    with pytest.raises(ImportRefused, match=message) as e:
        prepare(data, name, fast)
    assert e.value.reason == "invalid"
    assert len(str(e.value).splitlines()) == 1


def test_a_pdf_that_only_restricts_printing_opens():
    # encrypted with an owner password and an empty user password: readers open it as it is
    got = extract_pdf(encrypt_pdf(make_pdf(PDF_PAGES), ""))
    assert PDF_PAGES[1][0] in got.text


@pytest.mark.parametrize(("name", "reason", "message"), [
    ("report.exe", "unsupported", "unsupported file type '.exe'"),
    ("README", "unsupported", "no file extension"),
    ("notes.doc", "unsupported", "supported: .html"),
])
def test_wrong_or_missing_extensions(fast, name, reason, message):
    with pytest.raises(ImportRefused, match=message) as e:
        prepare(b"whatever", name, fast)
    assert e.value.reason == reason


def test_files_over_the_limit(fast):
    small = fast.model_copy(update={"max_upload_bytes": 2048})
    with pytest.raises(ImportRefused, match="more than the limit of 2048 bytes") as e:
        prepare(b"a" * 2049, "big.txt", small)
    assert e.value.reason == "too_large"


def test_conversion_is_bounded_in_time(fast, monkeypatch):
    slow = fast.model_copy(update={"import_timeout_s": 0.05})
    with pytest.raises(ImportRefused, match=r"took longer than 0\.05 s"):
        prepare(NEWS_EN.read_bytes(), "news.html", slow)


def test_conversion_is_bounded_in_memory(fast, tmp_path):
    """The child sets RLIMIT_AS before reading: asking it for more ends as a clear refusal."""
    import subprocess
    import sys

    hog = tmp_path / "hog.py"
    hog.write_text("import sys, qa.extract as x\n"
                   "x.extract = lambda data, kind: bytearray(2 << 30)\n"
                   "sys.exit(x._child(sys.argv[1:]))\n")
    f = tmp_path / "a.txt"
    f.write_text("some text " * 10)
    proc = subprocess.run([sys.executable, str(hog), "txt", str(f), "300", "10"], capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(Path(qa.importing.__file__).parent.parent)}, check=False)
    assert proc.returncode == 4
    assert json.loads(proc.stdout) == {"error": "converting it needed more than 300 MB of memory"}


# ------------------------------------------------------------------ ids and writing


@pytest.mark.parametrize(("name", "doc_id"), [
    ("Annual Report 2024.PDF", "annual-report-2024"),
    ("Отчёт о работе Технополиса.docx", "otchet-o-rabote-tekhnopolisa"),
    ("../../etc/passwd.html", "passwd"),
    ("..\\..\\windows\\evil.md", "evil"),
    ("  --weird__name!!.txt", "weird-name"),
])
def test_doc_ids_are_safe_slugs_of_the_file_name(name, doc_id):
    assert doc_id_for(name) == doc_id


@pytest.mark.parametrize("bad", ["../escape", "a/b", "Upper", "dots.in.id", "", "-lead", "x" * 101, "a\x00b"])
def test_given_ids_that_could_name_another_path_are_refused(fast, bad):
    with pytest.raises(ImportRefused) as e:
        prepare(RU_TEXT.encode(), "x.txt", fast, doc_id=bad or None) if bad else qa.importing.check_doc_id(bad)
    assert e.value.reason == "bad_id"
    assert not any(fast.sources_dir.iterdir())


def _folder(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def test_written_sources_their_originals_collisions_and_replace(fast):
    src = fast.sources_dir
    pdf = make_pdf(PDF_PAGES, title="Omega in figures")
    info = write_source(prepare(pdf, "Omega Figures.pdf", fast), src)
    assert info.doc_id == "omega-figures" and info.type == "pdf" and info.pages == 3 and info.bytes == len(pdf)
    assert _folder(src) == {"omega-figures.txt", "omega-figures.meta.json", "originals", "originals/omega-figures.pdf"}
    assert (src / "originals" / "omega-figures.pdf").read_bytes() == pdf
    doc = load_document(src / "omega-figures.txt")
    assert doc.title == "Omega in figures" and doc.date == "2024-03-15" and doc.lang == "en"
    assert doc.pages[0] == 0 and len(doc.pages) == 3
    assert doc.page_at(doc.text.index(PDF_PAGES[2][0])) == 3 and doc.page_at(0) == 1
    # the loader takes only the text: originals and metadata are never sources
    assert [d.doc_id for d in load_documents(src)] == ["omega-figures"]

    with pytest.raises(ImportRefused, match="already exists") as e:
        write_source(prepare(make_docx(), "omega-figures.docx", fast), src)
    assert e.value.reason == "exists"
    assert (src / "originals" / "omega-figures.pdf").read_bytes() == pdf

    info = write_source(prepare(make_docx(), "omega-figures.docx", fast, title="Given title", date="2020-01-02"),
                        src, replace=True)
    assert info.type == "docx" and info.pages is None and info.title == "Given title"
    assert _folder(src) == {"omega-figures.txt", "omega-figures.meta.json", "originals", "originals/omega-figures.docx"}
    doc = load_document(src / "omega-figures.txt")
    assert doc.pages == () and doc.date == "2020-01-02" and doc.title == "Given title"


def test_a_taken_id_is_refused_before_the_file_is_converted(settings, monkeypatch):
    def never(*a, **k):
        raise AssertionError("converted")

    monkeypatch.setattr(qa.importing, "run_extraction", never)
    with pytest.raises(ImportRefused, match="'alpha-technopark' already exists") as e:
        prepare(b"%PDF-1.7 garbage", "Alpha Technopark.pdf", settings, replace=False)
    assert e.value.reason == "exists"


def test_command_line_values_win_and_are_checked(fast):
    p = prepare(NEWS_EN.read_bytes(), "news.html", fast, lang="ru", title="T", url="https://x.example/a", date="2020-02-29")
    assert {k: p.meta[k] for k in ("lang", "title", "url", "date")} == {"lang": "ru", "title": "T",
                                                                          "url": "https://x.example/a", "date": "2020-02-29"}
    for kwargs, message in [({"date": "2021-02-30"}, "YYYY-MM-DD"), ({"date": "yesterday"}, "YYYY-MM-DD"),
                            ({"lang": "de"}, "'en' or 'ru'"), ({"url": "javascript:alert(1)"}, "http")]:
        with pytest.raises(ImportRefused, match=message):
            prepare(NEWS_EN.read_bytes(), "news.html", fast, **kwargs)


def test_a_failed_write_leaves_nothing_half_written(fast, monkeypatch):
    src = fast.sources_dir
    prepared = prepare(RU_TEXT.encode(), "omega.txt", fast)
    real = os.replace
    calls = []

    def failing(a, b):
        calls.append(b)
        if str(b).endswith(".txt") and "originals" not in str(b):
            raise OSError(28, "No space left on device")
        return real(a, b)

    monkeypatch.setattr(qa.importing.os, "replace", failing)
    with pytest.raises(OSError, match="No space left"):
        write_source(prepared, src)
    assert len(calls) == 3
    assert _folder(src) == {"originals"}  # no temporary files, no sidecar without its text
    monkeypatch.setattr(qa.importing.os, "replace", real)
    write_source(prepared, src)
    assert load_document(src / "omega.txt").text == RU_TEXT


def test_list_and_remove(fast, corpus_dir):
    write_source(prepare(make_docx(), "omega.docx", fast), corpus_dir)
    listed = {s.doc_id: s for s in list_sources(corpus_dir)}
    assert set(listed) == {"alpha-technopark", "gamma-cluster", "moscow-technoparks", "omega"}
    assert listed["omega"].type == "docx" and listed["omega"].original == "originals/omega.docx"
    assert listed["alpha-technopark"].type == "txt" and listed["alpha-technopark"].original is None
    assert listed["alpha-technopark"].bytes == (corpus_dir / "alpha-technopark.txt").stat().st_size
    removed = remove_source(corpus_dir, "omega")
    assert removed.doc_id == "omega"
    assert not list(corpus_dir.glob("omega*")) and not list((corpus_dir / "originals").iterdir())
    for bad in ("omega", "../corpus", "alpha-technopark.txt", ""):
        with pytest.raises(ImportRefused, match="no source named") as e:
            remove_source(corpus_dir, bad)
        assert e.value.reason == "missing"
    for doc_id in ("gamma-cluster", "moscow-technoparks"):
        remove_source(corpus_dir, doc_id)
    with pytest.raises(ImportRefused, match="last source") as e:
        remove_source(corpus_dir, "alpha-technopark")
    assert e.value.reason == "last"


def test_a_page_map_that_does_not_fit_the_text_is_refused(fast):
    (fast.sources_dir / "x.txt").write_text("Some text about Technopark Omega.\n", encoding="utf-8")
    for pages in ([5, 10], [0, 10_000], [0, 20, 10], "0", [0, True]):
        (fast.sources_dir / "x.meta.json").write_text(json.dumps({"pages": pages}), encoding="utf-8")
        with pytest.raises(SourceError, match="pages must be"):
            load_document(fast.sources_dir / "x.txt")


# ------------------------------------------------------------------ qa add


def _run(monkeypatch, capsys, settings: Settings, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setenv("QA_SOURCES_DIR", str(settings.sources_dir))
    monkeypatch.setenv("QA_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("QA_CHUNK_SIZE", "300")
    monkeypatch.setenv("QA_CHUNK_OVERLAP", "60")
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_qa_add_files_and_folders_without_building(fast, tmp_path, monkeypatch, capsys):
    docs = tmp_path / "incoming"
    (docs / "sub").mkdir(parents=True)
    shutil.copy(NEWS_EN, docs / "city news.html")
    (docs / "sub" / "omega.docx").write_bytes(make_docx())
    (docs / "sub" / "guide.md").write_text(MARKDOWN, encoding="utf-8")
    (docs / "sub" / "ignored.exe").write_bytes(b"MZ")
    (docs / ".hidden.md").write_text(MARKDOWN, encoding="utf-8")
    code, out, err = _run(monkeypatch, capsys, fast, "add", str(docs), "--no-build")
    assert code == 0, err
    assert sorted(line.split()[1] for line in out.splitlines() if line.startswith("added")) == \
        ["city-news", "guide", "omega"]
    assert "index not rebuilt" in out
    assert {p.stem for p in fast.sources_dir.glob("*.txt")} == {"city-news", "guide", "omega"}

    # again: every id is taken -> one line each, exit 1, nothing changed
    before = {p: p.read_bytes() for p in fast.sources_dir.rglob("*") if p.is_file()}
    code, out, err = _run(monkeypatch, capsys, fast, "add", str(docs), "--no-build")
    assert code == 1 and err.count("already exists") == 3 and len(err.splitlines()) == 3
    assert {p: p.read_bytes() for p in fast.sources_dir.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["add", "{tmp}/missing.pdf", "--no-build"], 1, "no such file or folder"),
    (["add", "{tmp}/bad.pdf", "--no-build"], 1, "damaged"),
    (["add", "{tmp}/x.exe", "--no-build"], 1, "unsupported file type"),
    (["add", "{tmp}/a.md", "{tmp}/b.md", "--id", "same"], 2, "name one document"),
    (["add", "{tmp}/a.md", "--id", "../up", "--no-build"], 1, "invalid doc id"),
    (["add", "{tmp}/a.md", "--date", "2024-13-01", "--no-build"], 1, "YYYY-MM-DD"),
    (["add", "{tmp}/empty-folder", "--no-build"], 1, "no .html/.htm, .pdf, .docx, .md or .txt files found"),
])
def test_qa_add_refuses_with_one_line_and_an_exit_code(fast, tmp_path, monkeypatch, capsys, argv, code, message):
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.7\n" + b"\x8f" * 500)
    (tmp_path / "x.exe").write_bytes(b"MZ")
    (tmp_path / "empty-folder").mkdir()
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text(MARKDOWN, encoding="utf-8")
    got, _out, err = _run(monkeypatch, capsys, fast, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert got == code
    assert message in err and err.startswith("qa: ") and len(err.strip().splitlines()) == 1
    assert not list(fast.sources_dir.glob("*.txt"))


def test_qa_add_builds_the_index_and_the_answer_cites_the_page(settings, encoder, tmp_path, monkeypatch, capsys):
    """A PDF added to the tiny corpus: the index is rebuilt, and `qa ask` cites the page."""
    import qa.index

    monkeypatch.setattr(qa.index, "load_encoder", lambda *a, **k: encoder)
    monkeypatch.setattr(cli, "_load_encoder", lambda s: encoder)
    pdf = tmp_path / "omega.pdf"
    pdf.write_bytes(make_pdf(PDF_PAGES, title="Omega in figures"))
    code, out, err = _run(monkeypatch, capsys, settings, "add", str(pdf), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["added"][0]["doc_id"] == "omega" and report["index"]["docs"] == 4
    monkeypatch.setenv("QA_ABSTAIN_THRESHOLD", "0")
    code, out, err = _run(monkeypatch, capsys, settings, "ask", "How many resident companies did Technopark Omega have in 2020?",
                          "--json")
    answer = json.loads(out)
    first = answer["citations"][0]
    assert first["doc_id"] == "omega" and first["page"] == 2
    text = (settings.sources_dir / "omega.txt").read_text(encoding="utf-8")
    assert text[first["start"]:first["end"]] == first["quote"]
    code, out, err = _run(monkeypatch, capsys, settings, "ask", "How many resident companies did Technopark Omega have in 2020?")
    assert "(omega, 2024-03-15, p. 2, characters" in out

"""Language-aware text helpers shared by indexing and querying: script detection,
BM25 tokens (Snowball stem of the token's own script) and sentence spans."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_RUSSIAN
from razdel import sentenize
from razdel.substring import Substring

from qa.types import Span

_WORD = re.compile(r"\w+", re.UNICODE)
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LATIN = re.compile(r"[A-Za-z]")
_STOP = frozenset(STOPWORDS_EN) | frozenset(w.replace("ё", "е") for w in STOPWORDS_RUSSIAN)


def detect_lang(text: str) -> str:
    """``ru`` when Cyrillic letters dominate, else ``en``.

    Two languages with different scripts make a letter count exact enough; a
    statistical detector would only add a model to load and errors on short questions.
    """
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    return "ru" if cyr > lat else "en"


@lru_cache(maxsize=2)
def _stemmer(lang: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer("russian" if lang == "ru" else "english")


@lru_cache(maxsize=200_000)
def _stem(token: str) -> str:
    # Each token is stemmed by the stemmer of its own script, so a Russian text that
    # quotes an English name (and the other way round) still gets both stems right.
    lang = "ru" if _CYRILLIC.search(token) else "en"
    return _stemmer(lang).stemWord(token)


def stem_word(word: str) -> str:
    """The stem of one word, a stop word too ("раза" → "раз")."""
    return _stem(word.lower().replace("ё", "е"))


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word-free, stemmed word tokens for BM25."""
    out = []
    for m in _WORD.finditer(text.lower().replace("ё", "е")):
        tok = m.group()
        if tok in _STOP or (len(tok) == 1 and not tok.isdigit()):
            continue
        out.append(_stem(tok))
    return out


def content_words(text: str) -> list[str]:
    """The content words of ``text`` as written (lower-cased, ё = е), stop words left out:
    the vocabulary whose vectors let a question word match its translation."""
    lowered = text.lower().replace("ё", "е")
    return [m.group() for m in _WORD.finditer(lowered)
            if m.group() not in _STOP and (len(m.group()) > 1 or m.group().isdigit())]


def content_word_stems(text: str) -> list[tuple[str, str]]:
    """``content_words`` with the BM25 stem of each."""
    return [(w, _stem(w)) for w in content_words(text)]


def words_by_stem(text: str) -> dict[str, str]:
    """The first content word of ``text`` with each stem, by stem: one word a stem is
    looked up or encoded for its vector."""
    by_stem: dict[str, str] = {}
    for w, st in content_word_stems(text):
        by_stem.setdefault(st, w)
    return by_stem


# Bumped when sentence boundaries change: the index records it and is rebuilt.
SENTENCES_VERSION = 6

# Abbreviations that stand before a number ("c. 1455", "approx. 4 kg", "Vol. 1", "pp. 12",
# "табл. 2"): razdel ends a sentence at them when a figure follows (measured on XQuAD dev,
# where it cut "(c. 1455–1536)" and "approx. 4 kg" in two). Joined again when the next
# piece starts with a digit; "= c. Deciding" stays two sentences.
_BEFORE_NUMBER = re.compile(
    r"(?:^|[\s(\[])(?:c|ca|approx|vol|vols|fig|figs|pp|p|no|nos|art|ch|sec|para|eq|tab"
    r"|табл|рис|стр|гл|ст|п|ч|т|с|ок|илл|прим)\.$", re.IGNORECASE)


# A sentence razdel ends inside an open "«" quote is a title with a dot in it
# ("«Ведомости.") when at most this many words follow the "«", and then goes on.
_TITLE_WORDS = 4


def _last_open(text: str) -> int:
    """Position of the last "«" of ``text`` that no "»" closes (-1: none)."""
    opened: list[int] = []
    for i, ch in enumerate(text):
        if ch == "«":
            opened.append(i)
        elif ch == "»" and opened:
            opened.pop()
    return opened[-1] if opened else -1


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> Iterator[Span]:
    """Sentence spans of ``text[start:end]`` in ``text`` coordinates.

    Lines are split first (headings, list items and titles end without a full stop),
    then razdel splits each line; razdel knows Russian and English abbreviations and
    initials ("г.", "млн. долл.", "тыс. кв. м", "С.Собянин", "Mr.", "U.S.").
    """
    end = len(text) if end is None else end
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl < 0 else nl
        line = text[pos:line_end]
        open_at: int | None = None  # start of a sentence whose «…» quote is still open
        for s in _joined(line, sentenize(line)):
            if not s.text.strip():
                continue
            start = s.start if open_at is None else open_at
            # razdel ends a sentence at a dot inside a quoted title («Ведомости. Город»):
            # keep going until the quote closes. Only a title, though: quoted speech of
            # several sentences stays several sentences (kept whole, a paragraph of
            # speech outscored the one sentence that answers)
            chunk = line[start:s.stop]
            quoted = line[max(s.start, start + _last_open(chunk)):s.stop]
            if chunk.count("«") > chunk.count("»") and len(quoted.split()) <= _TITLE_WORDS:
                open_at = start
                continue
            open_at = None
            yield Span(pos + start, pos + s.stop)
        if open_at is not None:
            yield Span(pos + open_at, pos + len(line.rstrip()))
        pos = line_end + 1


def _cut_short(line: str, held: Substring, after: Substring) -> bool:
    """razdel ended ``held`` where its sentence goes on: after an abbreviation that
    stands before the number ``after`` starts with, at a semicolon ("… or Amazônia;
    Spanish: …"), or inside a bracket that closes later in the line (one never closed
    would swallow the rest of the paragraph)."""
    text = held.text.rstrip()
    return ((after.text[:1].isdigit() and bool(_BEFORE_NUMBER.search(text))) or text.endswith(";")
            or (text.count("(") > text.count(")") and line.find(")", held.stop) >= 0))


def _joined(line: str, pieces: Iterator[Substring]) -> Iterator[Substring]:
    """razdel's sentences of ``line`` with those it cut short (``_cut_short``) joined
    to what follows."""
    held: Substring | None = None
    for s in pieces:
        if held is not None and _cut_short(line, held, s):
            held = Substring(held.start, s.stop, line[held.start:s.stop])
            continue
        if held is not None:
            yield held
        held = s
    if held is not None:
        yield held


def word_tokens(text: str) -> list[tuple[int, int, str | None]]:
    """Word tokens of ``text`` as ``(start, end, stem)``; ``stem`` is None for stop words,
    so question-to-sentence matching uses exactly the BM25 notion of a content word."""
    out: list[tuple[int, int, str | None]] = []
    lowered = text.lower().replace("ё", "е")
    if len(lowered) != len(text):  # a few letters lower-case to two characters ("İ"): keep offsets exact
        lowered = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text).replace("ё", "е")
    for m in _WORD.finditer(lowered):
        tok = m.group()
        stop = tok in _STOP or (len(tok) == 1 and not tok.isdigit())
        out.append((m.start(), m.end(), None if stop else _stem(tok)))
    return out

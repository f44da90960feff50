"""Short-answer candidates inside a sentence: dates, numbers with their units, amounts,
names, quoted titles, and (for questions of no particular type) the phrase next to
the words the sentence shares with the question.

The typed shapes are regular expressions for both languages: the shapes asked about
(years, "175 тыс. кв. м", "500 млн. долл.", "С.Собянин", «Технополис») are regular
enough, and the parsers' named entities (qa/syntax.py) as the sentences' "has the asked
type" for names measured within noise on XQuAD dev (best sentence accuracy 0.767 against
0.764, equal at the current weights).
The entities and the parse are features of the learned phrase model below instead.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.syntax import DEPS, EMPTY, ENTS, POS, Parse
from qa.text import word_tokens

_F = re.IGNORECASE | re.UNICODE

_MONTH_EN = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
             r"|Jan\.|Feb\.|Mar\.|Apr\.|Aug\.|Sept?\.|Oct\.|Nov\.|Dec\.)")
_MONTH_RU = r"(?:январ|феврал|март|апрел|ма[йяе]|июн|июл|август|сентябр|октябр|ноябр|декабр)[а-яё]*"
_MONTH = rf"(?:{_MONTH_EN}|{_MONTH_RU})"
# a year of four digits (also read by qa/answering.py: the years a question names)
YEAR = r"(?:1[0-9]\d\d|20\d\d)"
_YEAR_RU = r"(?:\s*(?:года|году|годом|год|гг?\.|г\.))"
# a half or a quarter of the year ("second half", "во втором полугодии")
_PART_EN = r"(?:first|second|third|fourth|last)\s+(?:half|quarter)"
_PART_RU = r"(?:перв|втор|трет|четв[её]рт|последн)[а-я]*\s+(?:полугоди|квартал)[а-я]*"
_SEASON = (r"(?:early|late|mid-?|spring|summer|autumn|fall|winter|the end of|the beginning of|the middle of"
           rf"|(?:the\s+)?{_PART_EN}"
           r"|начал[ео]|конц[еа]|середин[еау]|весн[оеу]й?|летом|осень[юи]?|зим[оеу]й?"
           rf"|{_PART_RU})")

DATE = re.compile(
    rf"\b\d{{1,2}}(?:\s*[-–—]\s*\d{{1,2}})?\s+{_MONTH}(?:,?\s+{YEAR}{_YEAR_RU}?)?"
    rf"|\b{_MONTH_EN}\s+\d{{1,2}}(?!\d)(?:st|nd|rd|th)?(?:,\s*{YEAR})?"
    rf"|\b(?:{_SEASON}\s+(?:of\s+)?)?{_MONTH}\s+(?:of\s+)?{YEAR}{_YEAR_RU}?"
    rf"|\b\d{{1,2}}\.\d{{1,2}}\.{YEAR}|\b{YEAR}-\d\d-\d\d\b"
    rf"|\b{YEAR}-х(?:\s+годов|\s+гг\.)?"
    rf"|\b(?:{_SEASON}\s+(?:of\s+)?)?{YEAR}(?:\s*[-–—]\s*(?:{YEAR}|\d\d))?(?:s\b)?{_YEAR_RU}?"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)\s+century|\b[IVXL]+\s+век[а-я]*|\b\d{{1,2}}(?:-?м|-?го)?\s+век[а-я]*",
    _F,
)

# "тысяч" before "тыс.": an alternation takes the first that matches ("тыс" of "тысяч")
_SCALE = (r"(?:thousand|million|billion|trillion|тысяч[а-я]*|тыс\.?|млн\.?|млрд\.?|трлн\.?|миллион[а-я]*"
          r"|миллиард[а-я]*|триллион[а-я]*)")
# longer words first: an alternation takes the first that matches ("руб" of "рублей")
_CURRENCY = (r"(?:rubles|roubles|rub\.?|RUB|USD|US\$|\$|€|£|euros?|dollars?|pounds|рубл[а-я]*|руб\.?|доллар[а-я]*|долл\.?"
             r"|евро|₽)")
_PERCENT = r"(?:%|percent|per cent|процент[а-я]*|п\.\s?п\.)"
_UNIT = (r"(?:square (?:meters|metres|kilometers|kilometres|feet|miles)|sq\.?\s?(?:meters|metres|km|ft|mi|m)\.?"
         r"|(?:km|m|км|м)(?:2|²|\^\{?2\}?)"
         r"|kilometers|kilometres|km|meters|metres|miles|feet|hectares|ha\b|tons|tonnes|kg|MW|GW"
         r"|кв\.?\s?(?:м|км)\.?|квадратных\s+(?:метров|километров)|гектар[а-я]*|га\b|км|метр[а-я]*|тонн[а-я]*|МВт|ГВт"
         r"|times|раза?)")
_NUMWORD = (r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
            r"|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
            r"|hundreds?|thousands|dozens?|twice|thrice"
            r"|одн[аоиу]|дв[аеу]|двух|тр[иеё]|тр[её]х|четыр[а-я]+|пят[ьи]|шест[ьи]|сем[ьи]|восем[ьи]|девят[ьи]"
            r"|десят[ьи]|(?:один|две|три|четыр|пят|шест|сем|восем|девят)надцат[ьи]|двадцат[ьи]|тридцат[ьи]|сорок[а]?"
            r"|(?:пять|шесть|семь|восемь)десят|девяност[оа]|сто|двест[и]|триста|четыреста|пятьсот|сотн[иея]|сотен"
            r"|дважды|трижды|четырежды)")
_NUM = r"(?:\d{1,3}(?:[ \u00a0\u202f,]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)"
# one word of a figure: digits in it, a scale ("billion", "тыс.") or a number word
FIGURE_WORD = re.compile(rf"\w*\d\w*|{_SCALE}|{_NUMWORD}", _F)

# "for the sixth year in a row", "четвертый год подряд": a count of years said with an ordinal
_ORDINAL = (r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|\d{1,2}(?:st|nd|rd|th)"
            r"|(?:перв|втор|трет|четв[её]рт|пят|шест|седьм|восьм|девят|десят|\d{1,2}-?)[а-я]*)")
IN_A_ROW = re.compile(rf"\b{_ORDINAL}\s+(?:straight\s+|consecutive\s+)?(?:year|season|time)\s+in\s+a\s+row\b"
                      rf"|\b{_ORDINAL}\s+(?:год|раз)\s+(?:подряд|кряду)", _F)

# Hedges ("more than", "около") stay outside the span: the figure is the answer.
NUMBER = re.compile(
    rf"\b\d{{1,2}}:\d\d\b"
    rf"|(?:{_CURRENCY}\s?)?(?:№\s?|No\.\s?)?(?<![\w.,]){_NUM}(?!\d)(?!(?:st|nd|rd|th|-?й|-?го|-?м)\b)(?:\s*[-–—]\s*{_NUM})?(?:\s*{_SCALE})?(?:\s*{_UNIT})?(?:\s*{_CURRENCY})?(?:\s*{_PERCENT})?"
    rf"|\b{_NUMWORD}\b(?:\s+{_SCALE})?",
    _F,
)
# A month alone ("в июне", "in June") answers "which month": the Russian forms in full (a stem
# would take "маяк"), the English names capitalised and without "May" (the verb).
_BARE_MONTH = re.compile(
    r"\b(?:январ[ьяе]|феврал[ьяе]|март[ае]?|апрел[ьяе]|ма[йяе]|июн[ьяе]|июл[ьяе]|август[ае]?|сентябр[ьяе]"
    r"|октябр[ьяе]|ноябр[ьяе]|декабр[ьяе])\b|\b(?:January|February|March|April|June|July|August|September|October"
    r"|November|December)\b(?![ \t]+\d)",
    re.UNICODE,
)
# A half or quarter of the year alone ("во втором полугодии", "in the first quarter").
_PART_OF_YEAR = re.compile(rf"\b{_PART_RU}|\b{_PART_EN}\b", _F)
_LONE_YEAR = re.compile(rf"({YEAR})\s*(?:года|году|годом|год|г\.)", _F)
AMOUNT_MARK = re.compile(rf"{_CURRENCY}|{_PERCENT}", _F)
# A sum of money in a text: a currency sign, or a currency word standing alone ("руб." but
# not the "руб" of "за рубежом", "pounds" but not "compounds").
MONEY = re.compile(rf"[$€£₽]|(?<!\w){_CURRENCY}(?!\w)", _F)
# A percentage in a text: "%", "percent", "процентов", "п. п." (a share in words is ``SHARE``).
PERCENT = re.compile(_PERCENT, _F)
# A share said in words ("every fifth", "каждый пятый", "one in five", "two-thirds", "две трети")
# answers "What proportion…" as a percentage does.
_ORDINAL_WORD = (r"(?:second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\d{1,2}(?:st|nd|rd|th)"
                 r"|втор|трет|четв[её]рт|пят|шест|седьм|восьм|девят|десят)[а-яё]*")
SHARE = re.compile(
    rf"\b(?:every|кажд(?:ый|ая|ое|ого|ую|ой))\s+{_ORDINAL_WORD}\b"
    r"|\b(?:one|two|three|\d+)\s+(?:in|out\s+of)\s+(?:two|three|four|five|six|seven|eight|nine|ten|\d+)\b"
    r"|\b(?:one|two|three|four|a)[- ](?:half|thirds?|quarters?|fifths?)\b|\bhalf\b"
    r"|\b(?:одн[ауо]|две|три)\s+(?:трет[иья]|четверт[иья]|пят[ыо][ех])\b|\bполовин[аеуы]\b|\bтреть\b|\bчетверть\b", _F)

# Names: capitalised words (Latin or Cyrillic), initials, short linking words; quoted titles.
_CAP = r"[A-ZА-ЯЁ][\w'’\-]*"
NAME = re.compile(
    rf"(?:[A-ZА-ЯЁ]\.\s?){{1,2}}{_CAP}"
    rf"|{_CAP}(?:\s+(?:(?:of|de|da|van|von|der|and|&|the|for)\s+)?{_CAP}){{0,5}}",
    re.UNICODE,
)
QUOTED = re.compile(r"«[^«»]{1,80}»|“[^“”]{1,80}”|\"[^\"]{1,80}\"|„[^„“]{1,80}“")
# a quoted title with the capitalised word before it: ОЭЗ «Технополис Москва», компания «Микрон»
NAMED = re.compile(rf"(?:{_CAP}\s+)?(?:[a-zа-яё]+\s+)?(?:«[^«»]{{1,80}}»|\"[^\"]{{1,80}}\"|„[^„“]{{1,80}}“)", re.UNICODE)

_EDGE_STOP = frozenset((
    "the a an of in on at to for by with and or as is was were are be been its their his her this that "
    "which who в во на с со к ко по о об от до из за для и или а но что как это его ее её их который "
    "которая которые "
).split())
_NOT_NAMES = frozenset((
    "the a an in on at it this that these those he she they we i by for of and but if as after before "
    "during since mr mrs ms dr when where while there here its their his her our january february march "
    "april may june july august september october november december в на с по о и а но это он она они "
    "его её их по после до во при для от из к "
).split())


@dataclass(frozen=True)
class Candidate:
    start: int  # offsets into the sentence text
    end: int
    kind: str


@dataclass(frozen=True)
class Focus:
    """Each token of a sentence against the question's focus word: the same stem, and the
    cosine of the token's word vector to the focus word's (0 where either has none)."""

    same: np.ndarray  # bool, one per token
    sim: np.ndarray  # float32, one per token


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Strip spaces and punctuation at the edges (keeping closing quotes and %)."""
    while start < end and (text[start].isspace() or text[start] in ",.;:—–-("):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in ",.;:—–-)"):
        # keep the dot of an abbreviation ("млн. долл., …", "sq. m. of …"), but not a full stop
        # that ends the sentence ("… 175 тыс. кв. м." at the end, or before a capital)
        if (text[end - 1] == "." and re.search(r"\b(?:[a-zа-яё]{1,4}|[A-ZА-ЯЁ])\.$", text[start:end], re.UNICODE)
                and re.match(r"\s*[,;:)]|\s+[a-zа-яё\d]", text[end:])):
            break
        end -= 1
    return start, end


# "five to ten years", "30 to 50 thousand", "от 30 до 50 тысяч": two figures joined by a word
# are one range. After "from" / "с" / "со" they are a change or a span of time as often
# ("rose from 415,000 to 587,000", "с 1361 по 1528 год"), and stay two figures.
_RANGE_JOIN = re.compile(r"\s+(?:to|по|до)\s+", _F)
_CHANGE_FROM = re.compile(r"\b(?:from|с|со)\s+$", _F)


def _joined(text: str, cands: list[Candidate], join: re.Pattern[str], before: re.Pattern[str],
            after_before: bool) -> list[Candidate]:
    """``cands`` with each two neighbours that only ``join`` separates made one, when the
    words before the first match ``before`` (``after_before``) or do not (not ``after_before``)."""
    out: list[Candidate] = []
    for c in cands:
        prev = out[-1] if out else None
        if (prev is not None and join.fullmatch(text, prev.end, c.start)
                and bool(before.search(text, max(0, prev.start - 9), prev.start)) == after_before):
            out[-1] = Candidate(prev.start, c.end, c.kind)
        else:
            out.append(c)
    return out


def _ranges(text: str, cands: list[Candidate]) -> list[Candidate]:
    return _joined(text, cands, _RANGE_JOIN, _CHANGE_FROM, after_before=False)


# "between 2005 and 2010", "from 1870 to 1939", "с 1500 по 1850": two dates after "between" /
# "from" are one span of time, the answer to "When were attacks the highest?", "В какие годы…"
# (the word before stays out, as a bound does)
_SPAN_OF_TIME = re.compile(r"\b(?:between|from|между|с|со)\s+$", _F)
_SPAN_JOIN = re.compile(r"\s+(?:and|to|и|по|до)\s+|\s*[-–—]\s*", _F)


def _spans_of_time(text: str, cands: list[Candidate]) -> list[Candidate]:
    return _joined(text, cands, _SPAN_JOIN, _SPAN_OF_TIME, after_before=True)


def typed_candidates(text: str, qtype: str, parts: bool = True) -> list[Candidate]:
    """Spans of ``text`` of the shape a ``qtype`` question asks for (``parts``: also a
    month or a part of the year alone, when there is no fuller date)."""
    out: list[Candidate] = []
    if qtype == "date":
        for m in DATE.finditer(text):
            a, b = _trim(text, m.start(), m.end())
            # "в 2017 году" answers "в каком году?" with the year: the case ending is the sentence's
            if y := _LONE_YEAR.fullmatch(text, a, b):
                b = a + len(y.group(1))
            out.append(Candidate(a, b, "date"))
        out = _spans_of_time(text, out)
        # a month or a part of the year alone, only where the text has no fuller date (a
        # month of a full date elsewhere in the sentence took its place on XQuAD dev)
        if parts and not out:
            out = [Candidate(m.start(), m.end(), "date")
                   for m in sorted((*_BARE_MONTH.finditer(text), *_PART_OF_YEAR.finditer(text)), key=lambda m: m.start())]
    elif qtype in ("number", "amount"):
        dates = [(m.start(), m.end()) for m in DATE.finditer(text) if re.search(r"[^\d\s]", m.group())]
        for m in NUMBER.finditer(text):
            if not m.group().strip():
                continue
            a, b = _trim(text, m.start(), m.end())
            # a bare year is a date, not a quantity; a number inside a date ("4 December") too
            if re.fullmatch(YEAR, text[a:b]) or any(x <= a and b <= y for x, y in dates):
                continue
            kind = "amount" if AMOUNT_MARK.search(text[a:b]) else "number"
            out.append(Candidate(a, b, kind))
        # said in words: a count of years with an ordinal answers a number question only, a
        # share an amount question only
        out += [Candidate(m.start(), m.end(), qtype) for m in (IN_A_ROW if qtype == "number" else SHARE).finditer(text)]
        out = _ranges(text, sorted(out, key=lambda c: c.start))
        if qtype == "amount" and any(c.kind == "amount" for c in out):
            out = [c for c in out if c.kind == "amount"]
    elif qtype in ("person", "organisation", "place"):
        spans: list[tuple[int, int]] = []
        named = [(m.start(), m.end()) for m in NAMED.finditer(text)] if qtype == "organisation" else []
        spans += named
        for m in NAME.finditer(text):
            a, b = m.start(), m.end()
            a, words = _past_not_names(text, a, b)
            # "ОЭЗ" of "ОЭЗ «Технополис Москва»" is the start of a name, not one
            if not words or DATE.fullmatch(text[a:b]) or any(x == a and y > b for x, y in named):
                continue
            spans.append((a, b))
        spans += [(m.start(), m.end()) for m in QUOTED.finditer(text)]
        out = [Candidate(*_trim(text, a, b), qtype) for a, b in spans]
    return [c for c in out if c.end > c.start]


def _past_not_names(text: str, a: int, b: int) -> tuple[int, list[str]]:
    """The start and words of ``text[a:b]`` past its leading words that are never a
    name's ("The", "В"): a capitalised run or an entity often starts with one."""
    words = text[a:b].split()
    while words and words[0].lower() in _NOT_NAMES:
        a = text.index(words[1], a + len(words[0])) if len(words) > 1 else b
        words = words[1:]
    return a, words


_CLAUSE_CUT = re.compile(r"[,;:(—–]")


def _to_clause_end(text: str, lo: int, hi: int, after: int) -> tuple[int, int]:
    """``lo..hi`` (a parse subtree) ended at the first comma, colon, bracket or dash from
    ``after`` on, and trimmed."""
    if cut := _CLAUSE_CUT.search(text, after, hi):
        hi = cut.start()
    return _trim(text, lo, hi)


_NAME_ENTS = frozenset(ENTS.index(e) for e in ("MISC", "PER", "ORG", "LOC"))
_NOT_NAME_POS = frozenset(POS.index(p) for p in ("VERB", "ADV", "ADP", "DET", "PRON", "SCONJ", "CCONJ", "AUX", "PART",
                                                 "INTJ"))
_QUOTE_PAIRS = (("«", "»"), ("„", "“"), ("“", "”"))


def _balanced(s: str) -> bool:
    return s.count('"') % 2 == 0 and all(s.count(a) == s.count(b) for a, b in _QUOTE_PAIRS if a != b)


def with_entities(text: str, cands: list[Candidate], parse: Parse, kind: str) -> list[Candidate]:
    """Name candidates read against the sentence's parse. A named entity the parser found
    replaces the capitalised runs inside it: Russian names go on in lower case ("Саксонский
    сад", "Верховного суда США") and English ones past commas ("Department of Science,
    Industrial Policy and Entrepreneurship"), where the capitals alone stop. A capitalised
    word that opens the sentence is no name when the parser tags it a verb, adverb,
    preposition and the like ("Following the…", "Сегодня…"). Entities with a quote cut
    in two are not used (the quoted title is the better span). ``kind``: the question type."""
    if not len(parse):
        return cands
    ents: list[tuple[int, int]] = []
    for a, b, t in parse.ents.tolist():
        if t not in _NAME_ENTS:
            continue
        a, words = _past_not_names(text, a, b)  # "the Council for…" -> "Council for…"
        while words and words[-1].lower() in _EDGE_STOP:  # "the State Duma of" -> "State Duma"
            b = text.rindex(words[-1], a, b)
            words = words[:-1]
        a, b = _trim(text, a, b)
        if b > a and _balanced(text[a:b]):
            ents.append((a, b))
    first = next((i for i, st in enumerate(parse.start.tolist()) if text[st:parse.end[i]].strip("-–—•*\"«„“ ")), None)
    out = [Candidate(a, b, kind) for a, b in ents]
    for c in cands:
        if any(a <= c.start and c.end <= b for a, b in ents):  # the entity is its span already
            continue
        if (first is not None and int(parse.start[first]) == c.start and int(parse.pos[first]) in _NOT_NAME_POS
                and not any(a <= c.start < b for a, b in ents)):
            rest = c.start + len(text[c.start:c.end].split()[0])
            start, end = _trim(text, rest, c.end)
            if end <= start:
                continue
            c = Candidate(start, end, c.kind)
        out.append(c)
    return out


# Head nouns of a body's descriptive name, which Russian writes in lower case ("департамент
# инвестиционной и промышленной политики", "московский экспортный центр") and no capitals or
# entity tagger finds.
_BODY_HEADS = frozenset(st for _a, _b, st in word_tokens(
    "department ministry committee centre center agency fund association council university institute corporation "
    "government administration chamber union authority департамент министерство ведомство комитет центр агентство "
    "фонд ассоциация совет университет институт корпорация правительство администрация палата союз управление "
    "служба дума мэрия") if st)


def body_phrases(text: str, parse: Parse) -> list[Candidate]:
    """For an organisation question: the noun phrase (the parse subtree, without a leading
    preposition, up to the first comma) of every lower-case head noun of a body's name."""
    if not len(parse):
        return []
    _whole, stripped = _subtrees(parse)
    out = []
    for k in range(len(parse)):
        a, b = int(parse.start[k]), int(parse.end[k])
        if int(parse.pos[k]) != _NOUN or not text[a].islower():
            continue
        if next((st for _x, _y, st in word_tokens(text[a:b]) if st), None) not in _BODY_HEADS:
            continue
        lo, hi = divmod(int(stripped[k]), 1 << 32)
        lo, hi = _to_clause_end(text, lo, hi, b)
        if hi > lo and len(text[lo:hi].split()) <= MAX_SPAN_WORDS:
            out.append(Candidate(lo, hi, "organisation"))
    return out


# ("с" / "со" left out: with the instrumental it is "with", as often as "from")
_PLACE_PREPS = frozenset("in at on into inside within near between from в во на из у между около возле внутри".split())


def place_phrases(text: str, parse: Parse) -> list[Candidate]:
    """For a where-question: the noun phrase a locative preposition governs ("in an altitude
    chamber", "на валу"), without the preposition, up to the first comma.
    The parsers attach them differently: Slovnet (UD) hangs the preposition on its noun,
    spaCy the noun on its preposition."""
    if not len(parse):
        return []
    _whole, stripped = _subtrees(parse)
    heads = parse.head.tolist()
    pos = parse.pos.tolist()
    out = []
    for k in range(len(parse)):
        if pos[k] != _ADP or text[parse.start[k]:parse.end[k]].lower() not in _PLACE_PREPS:
            continue
        h = heads[k]
        nouns = [h] if h > k and pos[h] in _NOMINAL else [c for c, hh in enumerate(heads) if hh == k and pos[c] in _NOMINAL]
        for n in nouns[:1]:
            lo, hi = divmod(int(stripped[n]), 1 << 32)
            lo = max(lo, int(parse.end[k]))
            lo, hi = _to_clause_end(text, lo, hi, lo)
            # "in May 1852", "в 2015 году" are times, not places
            if (hi > lo and len(text[lo:hi].split()) <= 8 and not DATE.search(text, lo, hi)
                    and not _BARE_MONTH.fullmatch(text, lo, hi)):
                out.append(Candidate(lo, hi, "place"))
    return out


def phrase_candidates(text: str, tokens: list[tuple[int, int, str | None]], matched: set[int]) -> list[Candidate]:
    """Phrases of words the question does not contain, cut at punctuation and at the
    question's own words: in extractive QA the answer is usually such a phrase right
    next to the words the sentence shares with the question."""
    out: list[Candidate] = []
    run: list[int] = []

    def flush() -> None:
        if not run:
            return
        idx = list(run)
        while idx and text[tokens[idx[0]][0]:tokens[idx[0]][1]].lower() in _EDGE_STOP:
            idx.pop(0)
        while idx and text[tokens[idx[-1]][0]:tokens[idx[-1]][1]].lower() in _EDGE_STOP:
            idx.pop()
        if idx:
            out.append(Candidate(tokens[idx[0]][0], tokens[idx[-1]][1], "phrase"))
        run.clear()

    for i, (a, b, _stem) in enumerate(tokens):
        gap = text[tokens[i - 1][1]:a] if i else ""
        if i in matched or re.search(r"[,;:()«»\"“”—–]|\s-\s", gap):
            flush()
        # the "s" of "Warsaw's" and other one-letter pieces never start or make a phrase
        if i not in matched and (run or b - a > 1 or text[a:b].isdigit()):
            run.append(i)
    flush()
    return out


# ---- a learned choice among phrases, for questions without a regular shape ----
#
# For "what / which / who" questions the answer is a phrase no regular expression
# describes. Every run of up to ``MAX_SPAN_WORDS`` words not crossing strong punctuation
# is a candidate; a linear model over surface features (length, overlap with and
# distance to the question's words, bounding punctuation, capitals, digits, the typed
# shapes above, crossed with the question word) picks one. The weights are fitted on
# XQuAD dev by ``python -m qa.tuning`` (listwise: a softmax over a question's
# candidates towards the best-F1 one, L-BFGS to the optimum) and stored in span_weights.json. Written here
# rather than taken from a library because the only off-the-shelf alternative is a
# neural reader, and none installs with its weights here.

MAX_SPAN_WORDS = 12
SPAN_WEIGHTS = Path(__file__).with_name("span_weights.json")
_STRONG_GAP = re.compile(r"[;:()«»\"“”—–]|\s-\s|[.!?]\s")
_PUNCT_BEFORE = re.compile(r"[,;:(«\"“—–]")
_PUNCT_AFTER = re.compile(r"[,;:)»\"”—–.]")
_WH = ("what", "which", "who", "whom", "whose", "where", "how", "why", "name", "что", "какой", "какая", "какие",
       "каком", "кто", "где", "как", "почему", "чем", "сколько")
_SHAPE_KINDS = ("date", "number", "person", "organisation")
_HEAD_POS = ("NOUN", "PROPN", "NUM", "VERB", "ADJ", "ADV", "PRON")
# from the sentence's parse (qa/syntax.py): the phrase is a constituent (a token's subtree,
# with or without a leading preposition or article), has one head (its part of speech and
# relation), is a named entity (its type); and, given the question, the head hangs on a
# question word (par_m), has one below it (child_m), or is 1, 2, 3+ tree steps from one
SYNTAX = ("const", "const_strip", "onehead", "nohead", *(f"hp_{p}" for p in _HEAD_POS), "hp_other",
          *(f"hd_{d}" for d in DEPS[1:]), "ent_eq", "ent_in", *(f"ent_{e}" for e in ENTS),
          "par_m", "child_m", "td1", "td2", "td3", "tdnone")
# given the question's focus word ("museum" of "Which museum…", qa.questions.focus_word): the
# question has one (foc), the phrase holds it (foc_in) or stands next to it (foc_nb), and
# the best cosine of its words' vectors to the focus word's (foc_sim; foc_hi: >= 0.5), so
# "Polytechnic Museum" answers "Which museum" and "steam turbine" "What kind of engine".
# Held out by article on XQuAD dev: F1 of untyped questions en 29.1 -> 32.6, ru 25.7 -> 25.8.
FOCUS = ("foc", "foc_in", "foc_sim", "foc_hi", "foc_nb")
# how rare the phrase's words are (IDF over the index's chunks, over the sentence's rarest):
# the mean and the largest, the largest >= 0.8, no content word at all. Answers are rare
# words more often than their neighbours (the SQuAD baseline's "span word frequencies").
# Held out by article on XQuAD dev: F1 of untyped questions en 32.6 -> 33.5, ru 25.8 -> 27.2.
RARITY = ("idf_mean", "idf_max", "idf_hi", "idf_none")
SPAN_BASE = ("bias", *(f"L{n}" for n in range(1, 9)), "ov", "ov0", "logd", "d1", "d2", "dfar", "hasleft", "hasright",
             "stopf", "stopl", "cap", "dig", "comma", "pb", "pa", "pbpa", "relpos", "frac_len", "prev_m", "next_m",
             "phr_eq", "phr_in", *(f"t_{m}_{k}" for k in _SHAPE_KINDS for m in ("eq", "in")), *SYNTAX, *FOCUS, *RARITY)
# base features that also count once more crossed with the question word and the question type
_CROSSED = ("L1", "L2", "L3", "cap", "dig", "ov0", "d1", "hasleft", "hasright", "pbpa", "prev_m", "next_m",
            "const", "const_strip", "hp_NOUN", "hp_PROPN", "hp_NUM", "hp_VERB", "hp_ADJ", "ent_eq",
            *(f"ent_{e}" for e in ENTS if e != "MISC"), "hd_subj", "hd_obj", "par_m", "td1", *FOCUS)


def question_word(question: str) -> str:
    """The first question word of ``_WH`` found in ``question`` ("none" when there is none)."""
    q = question.lower()
    return next((w for w in _WH if re.search(rf"\b{w}\b", q)), "none")


def span_candidates(tokens: list[tuple[int, int, str | None]], text: str,
                    max_words: int = MAX_SPAN_WORDS) -> tuple[np.ndarray, np.ndarray]:
    """First and last token index (inclusive) of every run of up to ``max_words`` words
    that does not cross strong punctuation."""
    first, last = [], []
    glued = _glued(tokens, text)
    for i in range(len(tokens)):
        if glued[i]:
            continue
        for j in range(i, min(len(tokens), i + max_words)):
            if j > i and not glued[j] and _STRONG_GAP.search(text, tokens[j - 1][1], tokens[j][0]):
                break
            if j + 1 < len(tokens) and glued[j + 1]:
                continue
            first.append(i)
            last.append(j)
    return np.array(first, dtype=np.int64), np.array(last, dtype=np.int64)


# One figure written in several word tokens: "3,5", "15.5", "3:08", "24.11.2014", "5 100"
# (thousands apart, the Russian way). A phrase never starts or ends inside one: the model
# took "5 раза" out of "в 3,5 раза" (the comma looked like a phrase's edge).
_FIGURE = re.compile(r"(?<![\w.,])\d+(?:[.,:/]\d+)+(?!\w)|(?<![\w.,])\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\w.,]\d)")


def _glued(tokens: list[tuple[int, int, str | None]], text: str) -> list[bool]:
    """For each token, whether it continues the figure the token before it began."""
    inside = [(m.start(), m.end()) for m in _FIGURE.finditer(text)]
    out = [False] * len(tokens)
    k = 0
    for i, (a, _b, _st) in enumerate(tokens):
        while k < len(inside) and inside[k][1] <= a:
            k += 1
        out[i] = i > 0 and k < len(inside) and inside[k][0] < a and tokens[i - 1][0] >= inside[k][0]
    return out


def feature_names(wh: str, qtype: str) -> list[tuple[str, ...]]:
    """For each column of ``span_matrix``, the names its value is counted under: the base
    feature, and for some also crossed with the question word and the question type."""
    out: list[tuple[str, ...]] = []
    for name in SPAN_BASE:
        if name in _CROSSED:
            out.append((name, f"{wh}*{name}", f"{qtype}*{name}"))
        elif name.startswith("t_eq_"):
            out.append((name, f"{wh}*{name}"))
        else:
            out.append((name,))
    return out


@dataclass(frozen=True)
class _Layout:
    """What ``span_matrix`` needs of a sentence whatever the question: its candidates and
    their surface features (read-only arrays)."""

    first: np.ndarray  # first and last token of each candidate
    last: np.ndarray
    a: np.ndarray  # its character range
    b: np.ndarray
    fixed: np.ndarray  # candidates x SPAN_BASE, the columns that do not depend on the question
    parse: Parse
    inside: np.ndarray  # candidates x parse tokens: the token lies inside the candidate
    head: np.ndarray  # the candidate's one head token (-1: none or several)
    tree: np.ndarray  # parse tokens x parse tokens: steps between them in the tree (99: none)


_COL = {name: c for c, name in enumerate(SPAN_BASE)}
# The phrase model's answer is the one of its best MBR_TOP phrases with the highest expected
# F1 against the others (minimum Bayes risk), not its single best: held out by article on
# XQuAD dev, F1 of the types it answers EN 37.8 -> 39.3, RU 32.2 -> 32.5 (5 phrases; 10: 39.2 /
# 32.1, 20: 39.3 / 31.7); in the eval report XQuAD EN->EN F1 49.6 -> 51.1, EM 41.0 -> 41.6, and
# RU->RU EM 35.9 -> 34.8 at the same F1 (a longer phrase, partly right, over a short one)
MBR_TOP = 5


@functools.lru_cache(maxsize=1024)
def _layout(text: str, parse: Parse = EMPTY) -> _Layout:
    # Kept per sentence text: the candidates and their shapes were two thirds of the
    # model's time, and answers come from the same sentences again and again. A sentence
    # holds 33 KB on average (XQuAD and the bundled sources; 150 KB the longest), so
    # 1024 of them ~35 MB.
    tokens = word_tokens(text)
    first, last = span_candidates(tokens, text)
    col = _COL
    fixed = np.zeros((len(first), len(SPAN_BASE)), dtype=np.float32)
    starts = np.array([t[0] for t in tokens], dtype=np.int64)
    ends = np.array([t[1] for t in tokens], dtype=np.int64)
    a, b = starts[first], ends[last]
    # the shapes the phrase model was fitted with: full dates only
    shapes = {k: [(c.start, c.end) for c in typed_candidates(text, k, parts=False)] for k in _SHAPE_KINDS}
    if len(first):
        n = last - first + 1
        nt = len(tokens)
        stop = np.array([st is None for _a, _b, st in tokens])
        cap = np.array([text[s0:s0 + 1].isupper() for s0 in starts])
        char_digit = np.concatenate([[0], np.cumsum(np.fromiter(map(str.isdigit, text), dtype=bool, count=len(text)))])
        char_comma = np.concatenate([[0], np.cumsum(np.fromiter((ch == "," for ch in text), dtype=bool,
                                                                count=len(text)))])
        body_end = len(text.rstrip(". \n"))
        pb_tok = np.array([s0 == 0 or bool(_PUNCT_BEFORE.search(text, max(0, s0 - 2), s0)) for s0 in starts])
        pa_tok = np.array([e0 >= body_end or bool(_PUNCT_AFTER.search(text, e0, e0 + 2)) for e0 in ends])
        fixed[:, col["bias"]] = 1.0
        fixed[np.arange(len(first)), col["L1"] + np.minimum(n, 8) - 1] = 1.0
        fixed[:, col["stopf"]] = stop[first]
        fixed[:, col["stopl"]] = stop[last]
        fixed[:, col["cap"]] = cap[first]
        fixed[:, col["dig"]] = char_digit[b] > char_digit[a]
        fixed[:, col["comma"]] = char_comma[b] > char_comma[a]
        fixed[:, col["pb"]] = pb_tok[first]
        fixed[:, col["pa"]] = pa_tok[last]
        fixed[:, col["pbpa"]] = pb_tok[first] & pa_tok[last]
        fixed[:, col["relpos"]] = a / max(1, len(text))
        fixed[:, col["frac_len"]] = n / nt
        for kind, spans in shapes.items():
            _mark(fixed, a, b, spans, f"t_eq_{kind}", f"t_in_{kind}")
    inside, head = _syntax_columns(fixed, a, b, parse)
    tree = _tree_distances(parse)
    for arr in (first, last, a, b, fixed, inside, head, tree):
        arr.flags.writeable = False
    return _Layout(first, last, a, b, fixed, parse, inside, head, tree)


def _tree_distances(parse: Parse) -> np.ndarray:
    """Steps between every two tokens of the parse tree, either way (99: not connected).
    Kept with the sentence's layout: a breadth-first search from the question's words
    for every question was a tenth of an answer's time."""
    n = len(parse)
    if not n:
        return np.zeros((0, 0), dtype=np.int16)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    kids = np.nonzero((parse.head >= 0) & (parse.head < n))[0]
    graph = coo_matrix((np.ones(len(kids)), (kids, parse.head[kids])), shape=(n, n)).tocsr()
    dist = shortest_path(graph, directed=False, unweighted=True)
    return np.where(np.isfinite(dist), dist, 99).astype(np.int16)  # ~3 KB for a 40-token sentence


_PUNCT = POS.index("PUNCT")
_NOUN = POS.index("NOUN")
_ADP = POS.index("ADP")
_NOMINAL = frozenset((_NOUN, POS.index("PROPN")))
_LEADING = frozenset(POS.index(p) for p in ("ADP", "DET", "CCONJ", "SCONJ", "PART", "AUX", "PUNCT"))
_HEAD_COL = {POS.index(p): f"hp_{p}" for p in _HEAD_POS}


def _subtrees(parse: Parse) -> tuple[np.ndarray, np.ndarray]:
    """Character ranges of each token's subtree without edge punctuation, and without a
    leading preposition, article or conjunction too (SQuAD answers mostly leave them out)."""
    n = len(parse)
    children: list[list[int]] = [[] for _ in range(n)]
    for k, h in enumerate(parse.head.tolist()):
        if h >= 0:
            children[h].append(k)
    whole, stripped = [], []
    pos = parse.pos.tolist()
    for k in range(n):
        seen, stack = {k}, [k]
        while stack:  # not a recursion: a parser may return a cycle
            for c in children[stack.pop()]:
                if c not in seen:
                    seen.add(c)
                    stack.append(c)
        lo, hi = min(seen), max(seen)  # its extent (a non-projective subtree has gaps)
        while lo < hi and pos[lo] == _PUNCT:
            lo += 1
        while hi > lo and pos[hi] == _PUNCT:
            hi -= 1
        whole.append((parse.start[lo], parse.end[hi]))
        while lo < hi and pos[lo] in _LEADING:
            lo += 1
        stripped.append((parse.start[lo], parse.end[hi]))
    key = np.int64(1) << 32
    return (np.array([x * key + y for x, y in whole], dtype=np.int64),
            np.array([x * key + y for x, y in stripped], dtype=np.int64))


def _syntax_columns(x: np.ndarray, a: np.ndarray, b: np.ndarray, parse: Parse) -> tuple[np.ndarray, np.ndarray]:
    """Fill the question-independent SYNTAX columns of ``x`` for candidates ``[a, b)``;
    return which parse tokens lie inside each candidate and its one head (-1: none or several)."""
    n = len(parse)
    if not n or not len(a):
        return np.zeros((len(a), n), dtype=bool), np.full(len(a), -1)
    col = _COL
    whole, stripped = _subtrees(parse)
    span = a.astype(np.int64) << 32 | b.astype(np.int64)
    x[:, col["const"]] = np.isin(span, whole)
    x[:, col["const_strip"]] = np.isin(span, stripped)
    inside = (parse.start[None, :] >= a[:, None]) & (parse.end[None, :] <= b[:, None])
    h = parse.head
    head_inside = np.zeros_like(inside)
    has = h >= 0
    head_inside[:, has] = inside[:, h[has]]
    is_head = inside & ~head_inside & (parse.pos != _PUNCT)[None, :]
    count = is_head.sum(1)
    head = np.where(count == 1, is_head.argmax(1), -1)
    x[:, col["onehead"]] = count == 1
    x[:, col["nohead"]] = count == 0
    one = head >= 0
    rows = np.nonzero(one)[0]
    hpos = parse.pos[head[one]]
    for r, p in zip(rows, hpos.tolist(), strict=True):
        x[r, col[_HEAD_COL.get(p, "hp_other")]] = 1.0
    for r, d in zip(rows, parse.dep[head[one]].tolist(), strict=True):
        if d:
            x[r, col[f"hd_{DEPS[d]}"]] = 1.0
    for s0, e0, t in parse.ents.tolist():
        eq = (a == s0) & (b == e0)
        x[eq, col["ent_eq"]] = 1.0
        x[eq, col[f"ent_{ENTS[t]}"]] = 1.0
        x[~eq & (a >= s0) & (b <= e0), col["ent_in"]] = 1.0
    return inside, head


def _mark(x: np.ndarray, a: np.ndarray, b: np.ndarray, spans: list[tuple[int, int]], eq_col: str, in_col: str) -> None:
    """Columns ``eq_col`` (the candidate is one of ``spans``) and ``in_col`` (inside one)."""
    eq = np.zeros(len(a), dtype=bool)
    within = np.zeros(len(a), dtype=bool)
    for s0, e0 in spans:
        eq |= (a == s0) & (b == e0)
        within |= (a >= s0) & (b <= e0)
    x[:, _COL[eq_col]] = eq
    x[:, _COL[in_col]] = within


def span_matrix(text: str, tokens: list[tuple[int, int, str | None]], matched: set[int], parse: Parse = EMPTY,
                focus: Focus | None = None, idf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates of ``text`` (their first and last token) and their features, one column
    per ``SPAN_BASE`` name; vectorised, as a sentence has hundreds of candidates. ``text``: a
    sentence; ``tokens``: ``word_tokens(text)``; ``parse``: its parse, offsets into ``text``;
    ``focus``: its tokens against the question's focus word; ``idf``: each token's IDF (0 for
    a stop word). The columns of what is not given stay 0."""
    lay = _layout(text, parse)
    first, last = lay.first, lay.last
    x = lay.fixed.astype(np.float64)
    if not len(first):
        return first, last, x
    col = _COL
    nt = len(tokens)
    n = last - first + 1
    is_m = np.zeros(nt + 2, dtype=bool)
    is_m[[i + 1 for i in matched]] = True  # shifted by one: index -1 and nt stay False
    cum_m = np.concatenate([[0], np.cumsum(is_m[1:nt + 1])])
    overlap = (cum_m[last + 1] - cum_m[first]) / n
    # nearest question word before each token / after each token
    prev_m = np.full(nt, -1)
    next_m = np.full(nt, -1)
    seen = -1
    for t in range(nt):
        prev_m[t] = seen
        seen = t if t in matched else seen
    seen = -1
    for t in range(nt - 1, -1, -1):
        next_m[t] = seen
        seen = t if t in matched else seen
    left, right = prev_m[first], next_m[last]
    dist = np.minimum(np.where(left >= 0, first - left, 99), np.where(right >= 0, right - last, 99))
    x[:, col["ov"]] = overlap
    x[:, col["ov0"]] = overlap == 0
    x[:, col["logd"]] = np.log1p(np.minimum(dist, 30))
    x[:, col["d1"]] = dist == 1
    x[:, col["d2"]] = dist == 2
    x[:, col["dfar"]] = dist >= 99
    x[:, col["hasleft"]] = left >= 0
    x[:, col["hasright"]] = right >= 0
    x[:, col["prev_m"]] = is_m[first]  # is_m is shifted by one: is_m[i] is token i - 1
    x[:, col["next_m"]] = is_m[last + 2]
    _mark(x, lay.a, lay.b, [(c.start, c.end) for c in phrase_candidates(text, tokens, matched)], "phr_eq", "phr_in")
    if len(lay.parse) and matched:
        _tree_columns(x, lay, [tokens[i][:2] for i in matched])
    if focus is not None:
        _focus_columns(x, first, last, focus)
    if idf is not None:
        _rarity_columns(x, first, last, idf, np.array([st is not None for _a, _b, st in tokens]))
    return first, last, x


def _running_max(values: np.ndarray, first: np.ndarray, last: np.ndarray, fill: float) -> np.ndarray:
    """The largest of ``values[first:last + 1]`` for each candidate: a running maximum from
    every first token over the next MAX_SPAN_WORDS (a candidate is never longer)."""
    padded = np.concatenate([values.astype(np.float32), np.full(MAX_SPAN_WORDS, fill, dtype=np.float32)])
    run = np.maximum.accumulate(np.lib.stride_tricks.sliding_window_view(padded, MAX_SPAN_WORDS)[:len(values)], axis=1)
    return run[first, last - first]


def _rarity_columns(x: np.ndarray, first: np.ndarray, last: np.ndarray, idf: np.ndarray, content: np.ndarray) -> None:
    """The RARITY columns of candidates ``first``..``last`` (token indices, inclusive)."""
    col = _COL
    idf = idf / (float(idf.max()) or 1.0)
    total = np.concatenate([[0.0], np.cumsum(idf)])
    count = np.concatenate([[0], np.cumsum(content)])
    n = count[last + 1] - count[first]
    rarest = _running_max(idf, first, last, 0.0)
    x[:, col["idf_mean"]] = np.where(n > 0, (total[last + 1] - total[first]) / np.maximum(n, 1), 0.0)
    x[:, col["idf_max"]] = rarest
    x[:, col["idf_hi"]] = rarest >= 0.8
    x[:, col["idf_none"]] = n == 0


def _focus_columns(x: np.ndarray, first: np.ndarray, last: np.ndarray, focus: Focus) -> None:
    """The FOCUS columns of candidates ``first``..``last`` (token indices, inclusive)."""
    col = _COL
    same = np.concatenate([[False], focus.same.astype(bool), [False]])  # shifted by one, as is_m
    cum = np.cumsum(same)
    best = _running_max(focus.sim, first, last, -1.0)  # the best cosine over each candidate's tokens
    x[:, col["foc"]] = 1.0
    x[:, col["foc_in"]] = cum[last + 1] > cum[first]
    x[:, col["foc_sim"]] = best
    x[:, col["foc_hi"]] = best >= 0.5
    x[:, col["foc_nb"]] = same[first] | same[last + 2]


def _tree_columns(x: np.ndarray, lay: _Layout, matched: list[tuple[int, int]]) -> None:
    """The question-dependent SYNTAX columns: where the candidate's head stands in the
    tree relative to the parse tokens that hold a question word (``matched``: their ranges)."""
    p = lay.parse
    n = len(p)
    ms = np.array([m[0] for m in matched])
    me = np.array([m[1] for m in matched])
    qword = np.any((ms[:, None] < p.end[None, :]) & (p.start[None, :] < me[:, None]), axis=0)
    if not qword.any():
        return
    dist = lay.tree[:, qword].min(1)  # tree distance of every token to the nearest question word
    rows = np.nonzero(lay.head >= 0)[0]
    if not len(rows):
        return
    h = lay.head[rows]
    parent = p.head[h]
    col = _COL
    x[rows, col["par_m"]] = (parent >= 0) & qword[np.maximum(parent, 0)]
    outside = ~lay.inside[rows]
    child = (p.head[None, :] == h[:, None]) & outside
    x[rows, col["child_m"]] = (child & qword[None, :]).any(1)
    near = child | ((np.arange(n)[None, :] == parent[:, None]) & outside)
    d = np.where(near, dist[None, :] + 1, 99).min(1)
    x[rows, col["td1"]] = d == 1
    x[rows, col["td2"]] = d == 2
    x[rows, col["td3"]] = (d >= 3) & (d < 99)
    x[rows, col["tdnone"]] = d >= 99


def mbr_choice(score: np.ndarray, first: np.ndarray, last: np.ndarray) -> int:
    """Of the candidates (``first``..``last`` tokens, scored ``score``; -inf: ruled out), the
    one of the ``MBR_TOP`` best with the highest expected word-overlap F1 against the others,
    weighted by the model's own softmax (the listwise fit is one): on the fence between "the
    Broncos" and "Denver Broncos", the choice that shares most with both."""
    k = int(np.argmax(score))
    top = np.argsort(-score)[:MBR_TOP]
    top = top[np.isfinite(score[top])]
    if len(top) < 2:
        return k
    p = np.exp(score[top] - score[top].max())
    f, la = first[top], last[top]
    overlap = np.clip(np.minimum(la[:, None], la[None, :]) - np.maximum(f[:, None], f[None, :]) + 1, 0, None)
    n = (la - f + 1).astype(np.float64)
    return int(top[int(np.argmax((2 * overlap / (n[:, None] + n[None, :])) @ p))])


class SpanScorer:
    """The fitted linear model over ``span_matrix`` (weights by feature name)."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = weights

    @classmethod
    def load(cls, path: Path = SPAN_WEIGHTS) -> SpanScorer:
        return cls(json.loads(path.read_text(encoding="utf-8"))["weights"])

    @functools.lru_cache(maxsize=512)  # noqa: B019 (a few hundred (wh, qtype) pairs, scorer lives as long as the app)
    def column_weights(self, wh: str, qtype: str) -> np.ndarray:
        return np.array([sum(self.weights.get(k, 0.0) for k in names) for names in feature_names(wh, qtype)])

    def best(self, text: str, tokens: list[tuple[int, int, str | None]], matched: set[int], qtype: str,
             wh: str, parse: Parse = EMPTY) -> Candidate | None:
        return self.pick(*span_matrix(text, tokens, matched, parse), tokens, qtype, wh, matched)

    def pick(self, first: np.ndarray, last: np.ndarray, x: np.ndarray, tokens: list[tuple[int, int, str | None]],
             qtype: str, wh: str, matched: AbstractSet[int] = frozenset(), no_dates: bool = False,
             people: bool = False) -> Candidate | None:
        """The candidate ``span_matrix`` returned (None: there are none) the model chooses
        (``mbr_choice``) that is not made only of words standing for the question's (``matched``): the model
        answered "Who did John Elway play for…?" with "John Elway". (Such a phrase is kept
        when no other is there.) ``no_dates``: the question asks for no time, and a date is
        no answer either ("What does NeoPhotonics develop?" -> "11 December 2015"). ``people``:
        only a person the parser named, when there is one (asked across languages, the
        question's words match the sentence's by vector, weakly, and the entity is the surer
        sign: XQuAD dev person F1 EN→RU 40.2 -> 42.6, RU→EN 32.5 -> 35.2; within one language
        it moved answers both ways)."""
        if not len(first):
            return None
        score = x @ self.column_weights(wh, qtype)
        if qtype == "person" or no_dates:
            # no date nor a piece of one ("мае 2021" of "в мае 2021 года"), and for a person no
            # phrase with a digit ("July 1961" for "Who led the committee…?", "On 11 December
            # 2015" for "Кто открыл…?")
            figure = ((x[:, _COL["t_eq_date"]] > 0) | (x[:, _COL["t_in_date"]] > 0)
                      | ((x[:, _COL["dig"]] > 0) & (qtype == "person")))
            if not figure.all():
                score = np.where(figure, -np.inf, score)
        if people:
            per = x[:, _COL["ent_PER"]] > 0
            if per.any():
                score = np.where(per, score, -np.inf)
        if matched:
            content = np.array([st is not None for _a, _b, st in tokens])
            asked = np.array([i in matched for i in range(len(tokens))])
            # per candidate: content tokens, and content tokens that are the question's
            n_content = np.concatenate([[0], np.cumsum(content)])
            n_asked = np.concatenate([[0], np.cumsum(content & asked)])
            own = n_content[last + 1] - n_content[first]
            echo = (own > 0) & (n_asked[last + 1] - n_asked[first] == own)
            if not echo.all():
                score = np.where(echo, -np.inf, score)
        k = mbr_choice(score, first, last)
        return Candidate(tokens[first[k]][0], tokens[last[k]][1], "phrase")

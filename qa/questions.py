"""What a question asks for, read off its question words (EN and RU), and how a short
follow-up borrows the topic of the previous turn.

Rules, not a model: the question words of both languages are a closed, small set,
and a rule that misfires is easy to see and fix; a classifier would need labelled
questions we do not have.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from qa.text import stem_word, tokenize, word_tokens

TYPES = ("date", "amount", "number", "person", "organisation", "place", "why_how", "list", "other")

_F = re.IGNORECASE | re.UNICODE
# Order matters: the first matching type wins ("how many" before "how", "how much money" before "how much").
_PERSON_EN = (r"person|people|man|woman|scientist|director|head|leader|president|mayor|minister|author|official|founder"
              r"|chief|premier|member|chairman|ceo|governor|engineer|architect|artist|king|queen|emperor|pope|officer"
              r"|player|singer|actor|writer|poet|composer|physicist|chemist|politician|entrepreneur|businessman")
_ORG_EN = (r"company|companies|organi[sz]ations?|firms?|enterprises?|institutions?|universit(y|ies)|agency|agencies"
           r"|department|bank|fund|team|club|corporation|manufacturers?|residents?|technoparks?|operator|body|bodies"
           r"|group|museum|legislature|ministry|committee|council|party|school|college|newspaper|network|brand"
           r"|holding|investors?|developer|producer|government|authority|authorities|administration")
# the Russian words for the people _PERSON_EN names ("Какой художник…", "Какой член парламента…")
_PERSON_RU = (r"министр|мэр|глав|руководител|директор|президент|премьер|заместител|вице|председател|основател|губернатор"
              r"|человек|люд|учен(?:ый|ая|ого|ые|ых|ым)|лидер|автор|член|депутат|инженер|архитектор|художник|корол[ьяе]"
              r"|королев|император|офицер|игрок|певи?ц|певец|акт[её]р|писател|поэт|композитор|физик|хими?к|политик"
              r"|предпринимател|бизнесмен|генерал|тренер|квотербек|начальник")
_ORG_RU = (r"компани|организаци|предприяти|фирм|учреждени|вуз|университет|банк|фонд|резидент|технопарк|производител"
           r"|ведомств|департамент|оператор|структур|площадк|кластер|центр|музе|завод|орган|инвестор|холдинг|госкорпораци"
           r"|бренд|издани|газет|журнал")
# "By what factor…": a number, and a factor (``_FACTOR``)
_BY_FACTOR = r"\bby\s+(what|which|how\s+big\s+a)\s+factor\b"
# Order matters: the first matching type wins ("how many" before "how", "which city body" is an organisation).
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("date", re.compile(
        r"^\s*(and\s+)?when\b|\bsince when\b|\b(what|which)\s+(year|years|date|month|day|decade|century)\b"
        r"|\bin\s+(what|which)\s+(year|month|decade|century)\b|\bhow long ago\b|\bwhat (is|was) the date\b"
        r"|^\s*(а\s+|и\s+)?когда\b|\bв\s+как(ом|ой|ие)\s+(году|месяце|день|годы|сроки|период)\b|\bкакого\s+(числа|года)\b"
        r"|\bс\s+какого\s+(года|времени|момента)\b|\b(к|до)\s+какому?\s+(году|сроку)\b|\bкакой\s+датой\b"
        r"|\bкакого\s+года\b|\bв\s+каком\s+году\b|\bна\s+как(ой|ие)\s+(год|годы|срок|период)\b"
        r"|\bв\s+как(ой|ом)\s+(половине|полугодии|квартале)\b|\b(in|during)\s+(what|which)\s+(half|quarter)\b"
        r"|\bfor\s+(what|which)\s+(year|period)\b", _F)),
    ("amount", re.compile(
        # "what percentage", also past a verb, an article (or "its" / "their": a follow-up) and one
        # word: "What was the total investment…"
        r"\bhow much (money|did|does|do|will|was|is|were)\b"
        r"|\b(what|which)\s+((is|was|were|are)\s+)?((the|its|their)\s+)?([\w'’-]+\s+){0,2}"
        r"(percentage|percent|share|proportion|amount|sum|price|cost|revenue|budget|investment|investments|turnover"
        rf"|fee|loan|rate)\b(?!\s+({_ORG_EN})\b)|\bhow expensive\b"  # not "Which investment firm…", an organisation
        r"|\bhow much\b(?!.*\b(space|area|land|room))"
        r"|\bсколько\s+(\w+\s+)?(стоит|стоил[аио]?|денег|средств|рубл\w*|доллар\w*|процент\w*|инвестиц\w*|вложил\w*"
        r"|потрат\w*)"
        r"|\bнасколько\s+(выше|ниже|больше|меньше|тяжелее|легче|дороже|дешевле)\b"  # "How much higher…"
        r"|\bна\s+сколько\s+процент|\bкак(ой|ая|ую|ова|ов)\s+((?:его|её|ее|их)\s+)?(\w+\s+)?(процент|доля|долю|объ[её]м\w*|сумм\w+|стоимость"
        r"|выручк\w+|бюджет|размер\s+инвестиц\w*|ставк\w+)|\bво\s+сколько\s+(обош|оцен)", _F)),
    ("number", re.compile(
        # past a verb also one word before the measure: "What is the total area…", "Какова совокупная
        # площадь…", and a possessive, as a follow-up asks: "Какова его полезная площадь?"
        r"\bhow many\b|\bhow much\b|\bhow (big|large|long|tall|far|old|high|wide|deep|fast)\b|\b(what|which)\s+"
        r"((is|was)\s+((the|its|their)\s+)?([\w'’-]+\s+)?|the\s+)?(number|size|area|population|length|height|distance|capacity"
        r"|floor\s+(space|area)|score)\b"
        r"|\bскольк(о|их|им|ими)\b|\bкако(е|го)\s+(число|количество)\b"
        r"|\bкаков[аоы]?\s+((?:его|её|ее|их)\s+)?(\w+\s+)?(площадь|мощность|число|количество|размер|длина|население"
        r"|численность)\b|\bкакой\s+площад(?!к)"
        # "Каким был средний размер семьи?", "Какой был финальный счет игры?" (a score: "20–18")
        r"|\bкак(им|ой|ая|ое)\s+был[аио]?\s+(\w+\s+)?(размер|площадь|длина|сч[её]т|население|численность)\b"
        r"|\bкакой\s+(\w+\s+)?сч[её]т\b"
        r"|\bкак\s+(давно|долго)\b|\b(под\s+каким\s+номером|какой\s+номер)\b|\bwhat\s+number\b"
        rf"|{_BY_FACTOR}", _F)),
    ("person", re.compile(
        rf"^\s*(and\s+)?(who|whom|whose)\b|\b(what|which)\s+([\w-]+\s+){{0,2}}({_PERSON_EN})\b|\bwho\b"
        rf"|^\s*(а\s+|и\s+)?(кто|кого|кому|кем|чей|чья|чьё|чье|чьи)\b|\bкто\b"
        # past a preposition or a noun too: "За кого…", "С кем…", "В честь кого…", "Фрагменты чьей стены…"
        rf"|\b(кого|кому|кем|ком|чьей|чьего|чьему|чьим|чьих|чью|чей|чья|чьё|чье|чьи|whom|whose)\b"
        rf"|\bкак(ой|ая|ие|ого|ому)\s+(\w+\s+)?({_PERSON_RU})", _F)),
    ("organisation", re.compile(
        rf"\b(what|which)\s+([\w-]+\s+){{0,2}}({_ORG_EN})\b"
        rf"|\bкак(ая|ие|ой|ую|им|ого|ое|ом|их)\s+(\w+\s+){{0,2}}({_ORG_RU})", _F)),
    ("place", re.compile(
        r"^\s*(and\s+)?where\b|\b(what|which)\s+(city|country|nation|district|region|place|area|location|town|state|street"
        r"|continent|part of)\b"
        r"|^\s*(а\s+|и\s+)?(где|куда|откуда)\b|\bв\s+как(ом|ой|их)\s+(город\w*|район\w*|стран\w*|регион\w*|округ\w*|месте)\b"
        r"|\bв\s+какой\s+части\b", _F)),
    # "Как называется …?" / "Как звали …?" ask for a name, not a manner
    ("other", re.compile(r"^\s*(а\s+|и\s+)?как\s+((еще|ещё|иначе|изначально|раньше|теперь|сейчас|официально)\s+)?"
                         r"(называ\w*|зовут|звали|именуют\w*|назвал\w*)\b", _F)),
    ("why_how", re.compile(
        r"^\s*(and\s+)?(why|how)\b|\bfor what (purpose|reason)\b|\bwhat (is|was|were) the (reason|purpose|cause)\b"
        r"|^\s*(а\s+|и\s+)?(почему|зачем|как|каким образом|для чего|за сч[её]т чего|благодаря чему)\b"
        r"|\bпо\s+как(ой|им)\s+причин\w*|\bс\s+какой\s+целью\b", _F)),
    ("list", re.compile(r"\b(list|name the|what are the main)\b|\bперечисл\w*|\bкакие\b", _F)),
]


def question_type(question: str) -> str:
    """One of ``TYPES``: what kind of span would answer ``question``."""
    for name, pattern in _RULES:
        if pattern.search(question):
            return name
    return "other"


# A question word of either language: a follow-up without one ("And their profit tax
# rate?", "А в 2024 году?") asks what the earlier question asked, of something else.
_QUESTION_WORD = re.compile(
    r"\b(?:what|which|who|whom|whose|when|where|why|how)\b"
    r"|\b(?:что|чего|чему|ч[её]м|как\w*|кто|кого|кому|кем|когда|где|куда|откуда|почему|зачем"
    r"|скольк\w+|чей|чья|чь[её]|чьи|ли)\b", _F)


def follow_up_type(question: str, history: Sequence[str] = ()) -> str:
    """``question_type`` of a question asked after ``history`` (earlier questions, oldest
    first): a follow-up that has no type and no question word of its own takes the type of
    the last earlier question."""
    qtype = question_type(question)
    if qtype != "other" or _QUESTION_WORD.search(question):
        return qtype
    previous = last_question(history)
    return question_type(previous) if previous else qtype


def last_question(history: Sequence[str]) -> str:
    """The most recent earlier question of ``history`` (oldest first), "" when there is none."""
    return next((h for h in reversed(history) if h.strip()), "")


# "Which sectors…", "What other privileges…", "Какие меры…": several things are asked for (a
# plural noun after the question word), whatever the type of each.
_AUX = r"(?:does|do|did|is|was|are|were|has|have|had|will|can)\b"
_SEVERAL = re.compile(
    rf"\b[Ww](?:hich|hat)\s+(?:other\s+|kinds?\s+of\s+|types?\s+of\s+)?(?:(?!{_AUX})[a-z-]+\s+)?(?!{_AUX})"
    r"[a-z-]+[^s\W]s\b(?<!ss)(?<!us)(?<!is)"
    r"|\b[Кк]ак(?:ие|их|ими)\b|\b[Пп]еречисл\w*|\b(?:[Ll]ist|[Nn]ame the)\b", re.UNICODE)


def asks_several(question: str, qtype: str | None = None) -> bool:
    """Whether ``question`` asks for several things ("Which sectors…?", "Какие меры…?"):
    a list that the sources give as items answers it whole (``Extractor._extend``).
    ``qtype``: its ``question_type`` when the caller has it already."""
    return (qtype or question_type(question)) == "list" or bool(_SEVERAL.search(question))


# A follow-up is short and leans on the previous turn: a pronoun or an opening "and".
_FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about)\b|\b(it|its|they|their|them|there|he|she|his|her|this|that)\b"
    r"|^\s*(а|и|ещё|еще)\b|\b(его|её|ее|их|он|она|оно|они|там|этот|эта|это|этой|этого|этом|ним|ней|нем|нём)\b", _F)


def resolve_follow_up(question: str, history: list[str]) -> str:
    """The question to retrieve with: a short follow-up ("And when was it founded?")
    gets the content words of the most recent previous question appended, so retrieval
    finds the same topic; a question that stands on its own is returned unchanged.

    Appending is language-agnostic (the encoder is multilingual and BM25 sees both
    scripts), and the answer is still extracted for the new question's own words.
    """
    if not history:
        return question
    own = tokenize(question)
    if len(own) > 4 or not _FOLLOW_UP.search(question):
        return question
    previous = last_question(history)
    if not previous:
        return question
    return f"{question} {previous}"


_COUNTED = re.compile(r"\b(?:how\s+many|how\s+much|скольк(?:о|их|им|ими|и))\s+((?:[\w-]+\s+){0,1}[\w-]+)", _F)


# A stretch of time is asked for ("How long…", "Как давно…"; not "how long ago", a date, nor
# "сколько лет было", an age): the figure that answers is written with its unit of time
# ("for 10 years", "последние четыре года"), and the unit belongs to the answer.
_DURATION = re.compile(
    r"\bhow\s+long\b(?!\s+ago)|\bfor\s+how\s+many\s+(years|months|weeks|days|hours)\b|\bкак\s+(давно|долго)\b"
    r"|\bсколько\s+времени\b|\bв\s+течение\s+(какого\s+(срока|времени|периода)|скольких)\b|\bна\s+какой\s+срок\b", _F)
TIME_UNIT = re.compile(
    r"(?:years?|months?|weeks?|days?|hours?|minutes?|seconds?|decades?|centur(?:y|ies)|лет|год|года|месяц\w*|недел\w+"
    r"|дн(?:я|ей)|день|час\w*|минут\w*|секунд\w*|десятилети\w*|век\w*)", _F)


# "What year…", "В каком году…" ask for the year alone, not the day it fell on: of XQuAD
# dev's golds for them where the sentence gives a full date, the year alone in every case
# ("1943" of "7 January 1943"). "When…" / "Когда…" keep the whole date.
_YEAR_ASKED = re.compile(
    r"\b(what|which)\s+year\b|\bв\s+каком\s+году\b|\bкакого\s+года\b|\b(к|до|с)\s+какого\s+года\b"
    r"|\bк\s+какому\s+году\b", _F)


# A factor is asked for ("Во сколько раз…", "How many times larger…"): "3,5 раза" answers
# it with its "раза", unlike "Сколько раз…" (how often), answered by the count alone.
_FACTOR = re.compile(r"\bво\s+сколько\s+раз|\bhow\s+many\s+times\s+(more|larger|bigger|higher|greater|less|fewer"
                     rf"|smaller|lower)\b|{_BY_FACTOR}", _F)
# A question that asks for a rough figure ("Approximately how many…", "Примерно сколько…")
# takes a bound with it ("over 5,100", "более 70 000"); one that does not, the figure alone.
_ROUGHLY = re.compile(r"\b(approximately|roughly|(about|around)\s+how|примерно|приблизительно|ориентировочно)\b", _F)
# How often: "Сколько раз…", "How many times…" (a factor is ``_FACTOR``)
_TIMES_ASKED = re.compile(r"\bскольк\w*\s+раз\b|\bhow\s+many\s+times\b|\bhow\s+often\b", _F)
# A question that asks for a number as a label ("Под каким номером…", "What number…") is
# answered by "№ 5"; any other figure question by a count or a measure, not by a label.
_LABEL = re.compile(r"\bномер\w*|\bwhat\s+number\b|\bnumber(ed)?\s+(?!of\b)\w", _F)


@dataclass(frozen=True)
class Quantity:
    """What a number question counts: ``stems`` of the (at most two) words after "how
    many" / "сколько" ("jobs" of "How many new jobs…", "компаний" of "Сколько компаний…"),
    the figure that answers being written right before them ("454 new jobs", "2 тыс.
    компаний"); ``duration``: a stretch of time is asked for (``_DURATION``); ``year``:
    a date question asks for the year alone (``_YEAR_ASKED``); ``unit``: the stems of
    the counted words, stop words too ("раз"), none for a factor (``_FACTOR``); ``rough``:
    a rough figure is asked for (``_ROUGHLY``); ``label``: a number as a label ("№ 5") is
    asked for (``_LABEL``); ``times``: a factor or how often is asked ("Во сколько раз…",
    "How many times…"), so a figure of times ("в 3,5 раза") may answer."""

    stems: frozenset[str] = frozenset()
    duration: bool = False
    words: tuple[str, ...] = ()  # those words, lower-cased (ё = е), for their vectors
    year: bool = False
    unit: frozenset[str] = frozenset()
    rough: bool = False
    label: bool = False
    times: bool = False


NO_QUANTITY = Quantity()


def asked_quantity(question: str) -> Quantity:
    m = _COUNTED.search(question)
    duration, year = bool(_DURATION.search(question)), bool(_YEAR_ASKED.search(question))
    rough, label = bool(_ROUGHLY.search(question)), bool(_LABEL.search(question))
    factor = bool(_FACTOR.search(question))
    times = factor or bool(_TIMES_ASKED.search(question))
    if not m:
        return Quantity(duration=duration, year=year, rough=rough, label=label, times=times)
    group = m.group(1).lower().replace("ё", "е")
    tokens = word_tokens(group)
    content = [(group[a:b], st) for a, b, st in tokens if st]
    return Quantity(frozenset(st for _w, st in content), duration, tuple(w for w, _st in content if w.isalpha()), year,
                    frozenset() if factor else frozenset(stem_word(group[a:b]) for a, b, _st in tokens),
                    rough, label, times)


# A question about a sum of money ("How much does a ticket cost?", "Сколько стоит аренда?",
# "What was its revenue?"), not a percentage or a rate: its answer names a currency.
_MONEY_ASKED = re.compile(
    r"\b(?:money|costs?|cost(?:ed|ing)|prices?|fees?|revenues?|budgets?|invest\w*|spen[dt]\w*|paid|pay\w*|loans?"
    r"|funding|salar\w+|worth|earn\w*|turnover)\b"
    r"|\b(?:сто(?:ит|или?|ило|ила|имост\w*)|цен[аыуе]|денег|деньг\w*|средств|рубл\w*|доллар\w*|инвестиц\w*|влож\w*"
    r"|потрат\w*|выручк\w*|бюджет\w*|кредит\w*|заплат\w*|взнос\w*|зарплат\w*)\b", _F)
_SHARE_ASKED = re.compile(r"\b(?:percent\w*|share|proportion|rates?)\b|\b(?:процент\w*|дол[яиюе]|ставк\w*)\b", _F)
_PERCENT_ASKED = re.compile(r"\bpercent\w*|\bпроцент\w*", _F)


def asks_percent(question: str, qtype: str | None = None) -> bool:
    """Whether ``question`` asks for a percentage ("What percentage…", "Сколько процентов…");
    ``qtype`` as for ``asks_several``."""
    return (qtype or question_type(question)) == "amount" and bool(_PERCENT_ASKED.search(question))


def asks_money(question: str, qtype: str | None = None) -> bool:
    """Whether ``question`` asks for a sum of money (an "amount" question about a price, a
    cost, a fee, revenue or an investment, not a percentage or a rate); ``qtype`` as for
    ``asks_several``."""
    return ((qtype or question_type(question)) == "amount" and bool(_MONEY_ASKED.search(question))
            and not _SHARE_ASKED.search(question))


# The noun a "what / which / какой / сколько" question names ("Which museum…", "What kind of
# engine…", "В каком году…"): the answer is often that noun's name or a kind of it, so
# the phrase model (qa/spans.py) compares the candidates' words with it.
_FOCUS = re.compile(
    r"\b(?:what|which|whose|how\s+many|how\s+much|как(?:ой|ая|ое|ие|ом|ого|ую|их|им|ими|ому)|сколько"
    r"|котор(?:ый|ая|ое|ые|ом|ого|ой|ую|ых)|чей|чья|чь[её]|чьи)\s+"
    r"(?:(?:kinds?|types?|sorts?|forms?|вид[аы]?|тип[аы]?|рода)\s+(?:of\s+)?)?([\w-]+)", _F)
_AUXILIARY = frozenset("did does do is was were are has have had can could will would should".split())


def focus_word(question: str) -> tuple[str, str] | None:
    """The word right after the first "what / which / how many / какой / сколько" (past
    "kind of", "вида"), lower-cased, with its stem; None when there is none or it is a
    stop word ("What did…", "Which of…")."""
    m = _FOCUS.search(question)
    if not m:
        return None
    word = m.group(1).lower().replace("ё", "е")
    stem = next((st for _a, _b, st in word_tokens(word) if st), None)
    return (word, stem) if stem and word not in _AUXILIARY else None


class QuestionError(ValueError):
    """A question that cannot be asked as it is (empty, too long, control characters)."""


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def validate_question(text: str, max_chars: int) -> str:
    """The question with surrounding whitespace removed, or ``QuestionError`` saying why not."""
    if _CONTROL.search(text):
        raise QuestionError("the question contains control characters")
    q = text.strip()
    if not q:
        raise QuestionError("the question is empty")
    if len(q) > max_chars:
        raise QuestionError(f"the question is too long ({len(q)} characters, at most {max_chars})")
    return q

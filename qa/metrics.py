"""Pure metric functions: SQuAD answer scores extended to Russian, containment,
ranking and abstention counts. No model, no index: the eval harness feeds them records.

English follows the official SQuAD v1.1 script exactly (ASCII punctuation removed, the
articles a/an/the dropped), so English figures compare with published ones. Russian
has no articles but uses typographic punctuation the ASCII set misses (« » — … „ “),
so for Russian every Unicode punctuation character is removed and ё is folded to е
(Russian texts write the two interchangeably).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

_ASCII_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")


def answer_lang(*texts: str) -> str:
    """``ru`` when any of the texts is Cyrillic: a Russian gold answer such as "2016 г."
    still needs the Russian rules, and numbers alone are the same under both."""
    return "ru" if any(_CYRILLIC.search(t) for t in texts) else "en"


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def normalize_answer(text: str, lang: str = "en") -> str:
    """SQuAD normalization: lower case, no punctuation, no English articles, single spaces."""
    text = text.lower()
    if lang == "ru":
        text = text.replace("ё", "е")
        text = "".join(ch for ch in text if not _is_punct(ch))
    else:
        text = "".join(ch for ch in text if ch not in _ASCII_PUNCT)
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str, lang: str | None = None) -> float:
    lang = lang or answer_lang(gold)
    return float(normalize_answer(prediction, lang) == normalize_answer(gold, lang))


def f1(prediction: str, gold: str, lang: str | None = None) -> float:
    """Token-overlap F1 in [0, 1] (the official script's, on normalized tokens)."""
    lang = lang or answer_lang(gold)
    pred = normalize_answer(prediction, lang).split()
    ref = normalize_answer(gold, lang).split()
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric: str, prediction: str | None, golds: Sequence[str]) -> float:
    """``max`` of EM or F1 over the acceptable answers, 0 when nothing was predicted."""
    if prediction is None or not golds:
        return 0.0
    fn = exact_match if metric == "em" else f1
    return max(fn(prediction, g) for g in golds)


def _loose(text: str) -> str:
    """Lower case, every punctuation character a space, ё = е, no English articles:
    "Six-time" holds "Six" and "‘often damaging’," holds "often damaging"."""
    text = text.lower().replace("ё", "е")
    text = "".join(" " if _is_punct(ch) else ch for ch in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def contains(text: str | None, golds: Iterable[str]) -> bool:
    """Does ``text`` contain one of the gold strings, compared as whole tokens?

    Both sides are normalized loosely (case, punctuation, line breaks), so "30,000 sq.
    meters" is found inside "…30,000 sq. meters." and "Six" inside "Six-time", while the
    token boundaries keep "201" from matching inside "2016". EM and F1 keep the official
    SQuAD normalization.
    """
    if not text:
        return False
    hay = f" {_loose(text)} "
    return any((g := _loose(gold)) and f" {g} " in hay for gold in golds)


def ranking_metrics(ranks: Sequence[int | None]) -> dict[str, float | None]:
    """``ranks``: 1-based rank of the first gold item per question, None when not retrieved.
    With no questions (a set of unanswerable ones) every rate is None, not 0."""
    n = len(ranks)
    if not n:
        return {"recall@1": None, "recall@5": None, "mrr": None, "questions": 0}
    return {
        "recall@1": sum(1 for r in ranks if r == 1) / n,
        "recall@5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "mrr": sum(1.0 / r for r in ranks if r is not None) / n,
        "questions": len(ranks),
    }


def abstention_metrics(abstained: Sequence[bool], answerable: Sequence[bool]) -> dict[str, float | int | None]:
    """Abstaining is the positive class: precision = abstentions that were right
    (the question was unanswerable), recall = unanswerable questions abstained on.

    A rate whose denominator is zero is ``None`` (undefined), never a flattering 1.0.
    """
    tp = sum(1 for a, ok in zip(abstained, answerable, strict=True) if a and not ok)
    fp = sum(1 for a, ok in zip(abstained, answerable, strict=True) if a and ok)
    fn = sum(1 for a, ok in zip(abstained, answerable, strict=True) if not a and not ok)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f = None if recall is None else 0.0
    else:
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f, "abstained": tp + fp,
            "unanswerable": tp + fn, "false_abstentions": fp, "answered_unanswerable": fn}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): an observed value, no interpolation."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))
    return ordered[k]

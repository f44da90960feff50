#!/usr/bin/env python3
"""Checker for the hand-made Technopolis Moscow QA evaluation set.

Usage:  python3 eval/check_eval_set.py

Loads eval/technopolis.jsonl and the verbatim sources in ../sources/ (relative
to this script) and exits with status 1 if any structural or content error is
found or if the required minimum counts are not met. Standard library only.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "technopolis.jsonl"
SOURCES = HERE.parent / "sources"

DOC_LANG = {
    "technopolis-moscow-encyclopedia": "en",
    "technospark-national-rating": "en",
    "technopolis-sez-clusters-2025": "ru",
    "technopolis-new-companies-2015": "ru",
    "technopolis-sez-efficiency-leader": "ru",
}

# Boilerplate that the service does not index: everything from the marker line
# (compared after stripping) to the end of the document.
BOILERPLATE_FROM_LINE = {
    "technospark-national-rating": "Latest Events",
    "technopolis-sez-efficiency-leader": "Самое популярное",
}
# Additional non-indexed material (stricter than required): the page address
# line + link stub at the end of the 2015 news, and the bare "mos.ru" lines.
BOILERPLATE_FROM_PREFIX = {
    "technopolis-new-companies-2015": "Адрес страницы:",
}
BOILERPLATE_EXACT_LINES = {
    "technopolis-sez-efficiency-leader": {"mos.ru"},
}

CATEGORIES = {"date", "number", "amount", "person", "organisation", "place", "list", "why_how"}
KEYS = {
    "id": str,
    "question": str,
    "lang": str,
    "answers": list,
    "doc_ids": list,
    "answerable": bool,
    "category": str,
}

MIN = {
    "total": 200,
    "en_same": 80,
    "ru_same": 80,
    "cross_lingual": 30,
    "cross_lingual_each_direction": 12,
    "unanswerable": 30,
    "unanswerable_each_lang": 12,
    "list": 15,
    "why_how": 15,
    "date_number_amount": 60,
}
MAX_ANSWER_WORDS = 12  # warning only
OVERLAP_THRESHOLD = 0.70  # warning only
OVERLAP_TARGET = 0.25  # warning only

STOP = set(
    ["a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or", "nor", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "many", "much", "its", "it", "this", "that", "these", "those", "has", "have", "had", "as", "into", "about", "after", "before", "there", "their", "they", "them", "he", "she", "his", "her", "him", "any", "other", "than", "also", "per", "according", "can", "could", "will", "would", "should", "may", "might", "shall", "one", "ones", "some", "such", "so", "not", "no", "yes", "you", "your", "we", "our", "us", "i", "me", "my", "if", "then", "there's", "what's", "it's", "и", "в", "во", "на", "с", "со", "по", "к", "ко", "о", "об", "обо", "от", "до", "из", "за", "для", "не", "ни", "ли", "же", "бы", "что", "чтобы", "как", "какой", "какая", "какое", "какие", "каких", "каком", "какому", "какую", "каким", "какими", "какого", "кто", "кого", "кому", "кем", "чем", "чего", "чему", "где", "когда", "куда", "откуда", "сколько", "скольких", "скольким", "почему", "зачем", "это", "этот", "эта", "эти", "этого", "этой", "этом", "этих", "его", "ее", "её", "их", "был", "была", "было", "были", "есть", "а", "но", "или", "у", "при", "под", "над", "через", "между", "также", "уже", "еще", "ещё", "тот", "та", "те", "то", "там", "тут", "так", "же", "всё", "все", "всего", "всех", "вы", "мы", "он", "она", "они", "оно", "ему", "ей", "им", "нам", "вам", "свой", "свои", "своих", "своей", "своего", "году", "года", "год", "годах", "лет"]
)

WORD_RE = re.compile(r"\w+", re.UNICODE)
SENT_SPLIT_RE = re.compile(r"\n+|(?<=[.!?…])\s+(?=[\"«„“(]?[A-ZА-ЯЁ0-9])")


def load_sources() -> tuple[dict[str, str], dict[str, str]]:
    full, indexed = {}, {}
    for doc_id in DOC_LANG:
        path = SOURCES / f"{doc_id}.txt"
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
        full[doc_id] = text
        lines = text.splitlines(keepends=True)
        kept = []
        for line in lines:
            stripped = line.strip()
            if doc_id in BOILERPLATE_FROM_LINE and stripped == BOILERPLATE_FROM_LINE[doc_id]:
                break
            if doc_id in BOILERPLATE_FROM_PREFIX and stripped.startswith(BOILERPLATE_FROM_PREFIX[doc_id]):
                break
            if stripped in BOILERPLATE_EXACT_LINES.get(doc_id, set()):
                kept.append("\n")  # keep line structure, drop content
                continue
            kept.append(line)
        indexed[doc_id] = "".join(kept)
        if doc_id in BOILERPLATE_FROM_LINE and len(indexed[doc_id]) == len(text):
            print(f"ERROR: boilerplate marker {BOILERPLATE_FROM_LINE[doc_id]!r} not found in {doc_id}")
            sys.exit(1)
    return full, indexed


def content_words(text: str) -> list[str]:
    out = []
    for tok in WORD_RE.findall(text.lower()):
        if tok in STOP:
            continue
        if tok.isdigit() or len(tok) >= 3:
            out.append(tok)
    return out


def similar(q: str, s: str) -> bool:
    """Crude inflection-tolerant match: shared prefix of at least
    max(4, min(len) - 2) characters (exact match for short words)."""
    if q == s:
        return True
    m = min(len(q), len(s))
    if m < 5:
        return False
    need = max(4, m - 2)
    return q[:need] == s[:need]


def max_overlap(question: str, docs_text: list[str]) -> tuple[float, str]:
    qwords = sorted(set(content_words(question)))
    if len(qwords) < 2:
        return 0.0, ""
    best, best_sent = 0.0, ""
    for text in docs_text:
        for sent in SENT_SPLIT_RE.split(text):
            swords = set(content_words(sent))
            if not swords:
                continue
            hit = sum(1 for q in qwords if any(similar(q, s) for s in swords))
            frac = hit / len(qwords)
            if frac > best:
                best, best_sent = frac, sent.strip()
    return best, best_sent


def main() -> int:
    errors: list[str] = []
    warnings: list[str] = []
    full, indexed = load_sources()

    if not DATA.exists():
        print(f"ERROR: {DATA} not found")
        return 1

    items = []
    with open(DATA, encoding="utf-8", newline="") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                errors.append(f"line {lineno}: empty line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"line {lineno}: invalid JSON ({exc})")
                continue
            if not isinstance(obj, dict):
                errors.append(f"line {lineno}: not a JSON object")
                continue
            bad = False
            for key, typ in KEYS.items():
                if key not in obj:
                    errors.append(f"line {lineno}: missing key {key!r}")
                    bad = True
                elif not isinstance(obj[key], typ):
                    errors.append(f"line {lineno}: key {key!r} should be {typ.__name__}")
                    bad = True
            extra = set(obj) - set(KEYS)
            if extra:
                errors.append(f"line {lineno}: unexpected keys {sorted(extra)}")
            if bad:
                continue
            for key in ("answers", "doc_ids"):
                if not all(isinstance(x, str) and x for x in obj[key]):
                    errors.append(f"line {lineno}: {key} must be non-empty strings")
                    bad = True
                if len(set(obj[key])) != len(obj[key]):
                    errors.append(f"line {lineno}: duplicate entries in {key}")
            if not obj["question"].strip() or not obj["id"].strip():
                errors.append(f"line {lineno}: empty id or question")
                bad = True
            if not bad:
                obj["_line"] = lineno
                items.append(obj)

    ids = Counter(o["id"] for o in items)
    for qid, n in ids.items():
        if n > 1:
            errors.append(f"duplicate id {qid!r} ({n} times)")
    qtexts = Counter(" ".join(o["question"].lower().split()) for o in items)
    for q, n in qtexts.items():
        if n > 1:
            errors.append(f"duplicate question text {q!r}")

    counts = Counter()
    per_cat = Counter()
    per_cat_lang = Counter()
    flagged = []
    overlap_checked = 0

    for o in items:
        qid, lang, cat = o["id"], o["lang"], o["category"]
        where = f"{qid} (line {o['_line']})"
        if cat not in CATEGORIES:
            errors.append(f"{where}: category {cat!r} not in {sorted(CATEGORIES)}")
        if lang not in ("en", "ru"):
            errors.append(f"{where}: lang must be 'en' or 'ru', got {lang!r}")
            continue
        counts[f"lang_{lang}"] += 1
        per_cat[cat] += 1
        per_cat_lang[(cat, lang)] += 1

        if not o["answerable"]:
            counts["unanswerable"] += 1
            counts[f"unanswerable_{lang}"] += 1
            if o["answers"]:
                errors.append(f"{where}: unanswerable question has answers")
            if o["doc_ids"]:
                errors.append(f"{where}: unanswerable question has doc_ids")
            if not qid.startswith("na-"):
                errors.append(f"{where}: unanswerable ids must start with 'na-'")
            continue

        if not o["answers"]:
            errors.append(f"{where}: answerable question has no answers")
        if not o["doc_ids"]:
            errors.append(f"{where}: answerable question has no doc_ids")
        unknown = [d for d in o["doc_ids"] if d not in DOC_LANG]
        for d in unknown:
            errors.append(f"{where}: unknown doc_id {d!r}")
        docs = [d for d in o["doc_ids"] if d in DOC_LANG]
        if not docs:
            continue

        for ans in o["answers"]:
            in_full = [d for d in docs if ans in full[d]]
            in_indexed = [d for d in docs if ans in indexed[d]]
            if not in_full:
                errors.append(f"{where}: answer {ans!r} not found verbatim in {docs}")
            elif not in_indexed:
                errors.append(f"{where}: answer {ans!r} occurs only in boilerplate of {in_full}")
            if len(ans.split()) > MAX_ANSWER_WORDS:
                warnings.append(f"{where}: long answer ({len(ans.split())} words): {ans!r}")
        for d in docs:
            if not any(ans in indexed[d] for ans in o["answers"]):
                errors.append(f"{where}: doc {d!r} listed but none of the answers occurs in its indexed text")

        doc_langs = {DOC_LANG[d] for d in docs}
        if lang in doc_langs:
            counts[f"same_{lang}"] += 1
            if not qid.startswith(f"{lang}-"):
                errors.append(f"{where}: same-language {lang} question should have id '{lang}-…'")
        else:
            counts["cross_lingual"] += 1
            counts[f"cross_{lang}_to_{'ru' if lang == 'en' else 'en'}"] += 1
            if not qid.startswith("xl-"):
                errors.append(f"{where}: cross-lingual question should have id 'xl-…'")

        same_lang_docs = [indexed[d] for d in docs if DOC_LANG[d] == lang]
        if same_lang_docs:
            overlap_checked += 1
            frac, sent = max_overlap(o["question"], same_lang_docs)
            if frac > OVERLAP_THRESHOLD:
                flagged.append((qid, frac, o["question"], sent))

    total = len(items)
    dna = per_cat["date"] + per_cat["number"] + per_cat["amount"]
    checks = [
        ("total", total, MIN["total"]),
        ("same-language en", counts["same_en"], MIN["en_same"]),
        ("same-language ru", counts["same_ru"], MIN["ru_same"]),
        ("cross-lingual", counts["cross_lingual"], MIN["cross_lingual"]),
        ("cross-lingual en->ru", counts["cross_en_to_ru"], MIN["cross_lingual_each_direction"]),
        ("cross-lingual ru->en", counts["cross_ru_to_en"], MIN["cross_lingual_each_direction"]),
        ("unanswerable", counts["unanswerable"], MIN["unanswerable"]),
        ("unanswerable en", counts["unanswerable_en"], MIN["unanswerable_each_lang"]),
        ("unanswerable ru", counts["unanswerable_ru"], MIN["unanswerable_each_lang"]),
        ("category list", per_cat["list"], MIN["list"]),
        ("category why_how", per_cat["why_how"], MIN["why_how"]),
        ("date+number+amount", dna, MIN["date_number_amount"]),
    ]
    for name, have, need in checks:
        if have < need:
            errors.append(f"count {name} = {have} < required {need}")
    for cat in sorted(CATEGORIES):
        for lang in ("en", "ru"):
            if per_cat_lang[(cat, lang)] == 0:
                errors.append(f"category {cat!r} has no {lang} question")

    # ---- report ----
    print(f"total: {total}")
    print(f"questions by language: en={counts['lang_en']} ru={counts['lang_ru']}")
    print(f"same-language: en={counts['same_en']} ru={counts['same_ru']}")
    print(
        f"cross-lingual: {counts['cross_lingual']} "
        f"(en->ru {counts['cross_en_to_ru']}, ru->en {counts['cross_ru_to_en']})"
    )
    print(
        f"unanswerable: {counts['unanswerable']} "
        f"(en {counts['unanswerable_en']}, ru {counts['unanswerable_ru']})"
    )
    print("per category (total / en / ru):")
    for cat in sorted(CATEGORIES):
        print(f"  {cat:13s} {per_cat[cat]:4d} / {per_cat_lang[(cat, 'en')]:3d} / {per_cat_lang[(cat, 'ru')]:3d}")
    print(f"  date+number+amount: {dna}")

    share = len(flagged) / overlap_checked if overlap_checked else 0.0
    print(
        f"wording overlap > {OVERLAP_THRESHOLD:.0%} with a source sentence: "
        f"{len(flagged)}/{overlap_checked} same-language questions ({share:.1%}; target < {OVERLAP_TARGET:.0%})"
    )
    for qid, frac, q, sent in flagged:
        warnings.append(f"{qid}: overlap {frac:.0%}: {q!r} ~ {sent[:120]!r}")
    if share >= OVERLAP_TARGET:
        warnings.append(f"overlap share {share:.1%} is not below target {OVERLAP_TARGET:.0%}")

    for w in warnings:
        print(f"WARNING: {w}")
    for e in errors:
        print(f"ERROR: {e}")
    if errors:
        print(f"FAILED with {len(errors)} error(s)")
        return 1
    print("OK: 0 errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())

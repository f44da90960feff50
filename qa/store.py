"""The server's question log and answer feedback in one SQLite file, and the reports
support staff read from it (``qa report``).

One connection guarded by a lock: the server calls in from its threadpool, and SQLite
serializes writers anyway. WAL lets ``qa report`` read while the server writes, and
``busy_timeout`` makes a second process wait for the write lock instead of failing.
All SQL is parameterized.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    id INTEGER PRIMARY KEY,
    answer_id TEXT NOT NULL UNIQUE,
    asked_at TEXT NOT NULL,
    question TEXT NOT NULL,
    question_key TEXT NOT NULL,
    lang TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    confidence REAL NOT NULL,
    latency_ms REAL NOT NULL,
    answer TEXT,
    short_answer TEXT,
    doc_id TEXT
);
CREATE INDEX IF NOT EXISTS questions_key ON questions (question_key);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id TEXT PRIMARY KEY REFERENCES questions (answer_id),
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

# Question and the answer it got last time, per group of equal questions.
_LATEST = """(SELECT {col} FROM questions l WHERE l.question_key = q.question_key ORDER BY l.id DESC LIMIT 1)"""

_WS = re.compile(r"\s+")


def question_key(question: str) -> str:
    """What counts as "the same question" in the reports: case, spacing and the final
    punctuation ignored (``casefold`` in Python, as SQLite's ``lower`` is ASCII-only)."""
    return _WS.sub(" ", question).strip().rstrip("?!.…;:¿ ").casefold()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    """The question log and feedback database at ``path`` (created when missing)."""

    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # SQLite answers a journal-mode change that meets another at once, "database is
        # locked", without its busy handler (two server workers opening a new file together:
        # 51 of 100 tries failed): tried again for as long as busy_timeout allows
        deadline = time.monotonic() + busy_timeout_ms / 1000
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        # With WAL, NORMAL syncs at checkpoints instead of at every commit (SQLite's advice
        # for WAL): a power cut can lose the last log rows, never corrupt the file
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        with self._lock:
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_question(self, *, answer_id: str, question: str, lang: str, abstained: bool, confidence: float,
                     latency_ms: float, answer: str | None = None, short_answer: str | None = None,
                     doc_id: str | None = None, asked_at: str | None = None) -> None:
        """Record one question asked and what it got."""
        with self._lock:
            self._db.execute(
                "INSERT INTO questions (answer_id, asked_at, question, question_key, lang, abstained, confidence,"
                " latency_ms, answer, short_answer, doc_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (answer_id, asked_at or _now(), question, question_key(question), lang, int(abstained),
                 float(confidence), float(latency_ms), answer, short_answer, doc_id),
            )

    def has_answer(self, answer_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM questions WHERE answer_id = ?", (answer_id,)).fetchone()
        return row is not None

    def add_feedback(self, answer_id: str, rating: str, comment: str | None = None) -> bool:
        """Store a rating for an answer; a later rating of the same answer replaces the
        earlier one (a visitor changing their mind counts once). False: unknown answer."""
        if rating not in ("up", "down"):
            raise ValueError(f"rating must be 'up' or 'down', got {rating!r}")
        now = _now()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO feedback (answer_id, rating, comment, created_at, updated_at)"
                " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM questions WHERE answer_id = ?)"
                " ON CONFLICT (answer_id) DO UPDATE SET rating = excluded.rating,"
                " comment = COALESCE(excluded.comment, feedback.comment), updated_at = excluded.updated_at",
                (answer_id, rating, comment, now, now, answer_id),
            )
            return cur.rowcount > 0

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, params).fetchall()]

    def frequent_questions(self, limit: int = 20) -> list[dict[str, Any]]:
        """Questions grouped by ``question_key``, most often asked first, with the answer
        the latest of them got."""
        return self._rows(
            "SELECT " + _LATEST.format(col="question") + " AS question, COUNT(*) AS asked,"
            " SUM(abstained) AS unanswered, ROUND(AVG(confidence), 4) AS avg_confidence, MAX(asked_at) AS last_asked, "
            + _LATEST.format(col="COALESCE(short_answer, answer)") + " AS last_answer, "
            + _LATEST.format(col="doc_id") + " AS last_doc_id"
            " FROM questions q GROUP BY question_key ORDER BY asked DESC, last_asked DESC LIMIT ?",
            (limit,),
        )

    def unanswered_questions(self, limit: int = 20) -> list[dict[str, Any]]:
        """Questions that were declined (below the confidence threshold), most often first."""
        return self._rows(
            "SELECT " + _LATEST.format(col="question") + " AS question, COUNT(*) AS asked, "
            + _LATEST.format(col="lang") + " AS lang,"
            " ROUND(MAX(confidence), 4) AS max_confidence, MAX(asked_at) AS last_asked"
            " FROM questions q WHERE abstained = 1 GROUP BY question_key ORDER BY asked DESC, last_asked DESC LIMIT ?",
            (limit,),
        )

    def feedback_summary(self, limit: int = 20) -> list[dict[str, Any]]:
        """Ratings per question, the most rated first (then the most disliked), with the
        latest comments."""
        rows = self._rows(
            "SELECT q.question_key AS question_key, " + _LATEST.format(col="question") + " AS question,"
            " SUM(f.rating = 'up') AS up, SUM(f.rating = 'down') AS down, COUNT(*) AS ratings,"
            " MAX(f.updated_at) AS last_rated, "
            + _LATEST.format(col="COALESCE(short_answer, answer)") + " AS last_answer, "
            + _LATEST.format(col="doc_id") + " AS last_doc_id"
            " FROM feedback f JOIN questions q ON q.answer_id = f.answer_id"
            " GROUP BY q.question_key ORDER BY ratings DESC, down DESC, last_rated DESC LIMIT ?",
            (limit,),
        )
        for row in rows:
            row["comments"] = [r["comment"] for r in self._rows(
                "SELECT f.comment AS comment FROM feedback f JOIN questions q ON q.answer_id = f.answer_id"
                " WHERE q.question_key = ? AND f.comment IS NOT NULL AND f.comment != ''"
                " ORDER BY f.updated_at DESC LIMIT 5",
                (row.pop("question_key"),),
            )]
        return rows

    def totals(self) -> dict[str, int]:
        with self._lock:
            q = self._db.execute("SELECT COUNT(*), COALESCE(SUM(abstained), 0) FROM questions").fetchone()
            f = self._db.execute(
                "SELECT COALESCE(SUM(rating = 'up'), 0), COALESCE(SUM(rating = 'down'), 0) FROM feedback").fetchone()
        return {"questions": q[0], "unanswered": q[1], "up": f[0], "down": f[1]}

    def report(self, limit: int = 20) -> dict[str, Any]:
        """Everything ``qa report`` shows, as one JSON-ready object."""
        return {
            "totals": self.totals(),
            "frequent": self.frequent_questions(limit),
            "unanswered": self.unanswered_questions(limit),
            "feedback": self.feedback_summary(limit),
        }

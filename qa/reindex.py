"""Rebuild the index while the server keeps answering, then swap the new one in.

The build runs in a background thread under the index's build lock (one build at a
time, across processes too), is published atomically on disk (qa/index.py), loaded, and
only then handed to ``publish``: requests in flight keep the service they started with,
new ones get the new service. A build that fails leaves the previous index serving and
its error in the status.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from qa.config import Settings
from qa.index import build_lock, build_on_disk, open_index
from qa.pipeline import QAService

log = logging.getLogger("qa.reindex")

State = Literal["idle", "running", "succeeded", "failed"]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class ReindexStatus:
    state: State = "idle"
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    docs: int | None = None
    chunks: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Reindexer:
    """Background rebuilds of ``settings.index_dir``; ``publish`` receives each new service."""

    def __init__(self, settings: Settings, encoder: Callable[[], Any], publish: Callable[[QAService], None]) -> None:
        self.settings = settings
        self._encoder = encoder
        self._publish = publish
        self._lock = threading.Lock()
        self._status = ReindexStatus()
        self._thread: threading.Thread | None = None

    def status(self) -> ReindexStatus:
        with self._lock:
            return self._status

    def start(self, before: Callable[[], Any] | None = None) -> ReindexStatus:
        """Start a rebuild; ``BuildInProgress`` when one is running (here or in another process).

        ``before`` (changing the sources: qa/importing.py) runs under the build lock first,
        so no build reads the sources half changed and this rebuild sees the change; when it
        raises, nothing is started and the error is the caller's."""
        with self._lock:
            # Taken here, not in the thread, so that a second request is refused at once.
            held = contextlib.ExitStack()
            held.enter_context(build_lock(self.settings.index_dir, wait=False))
            if before is not None:
                try:
                    before()
                except BaseException:
                    held.close()
                    raise
            self._status = ReindexStatus(state="running", started_at=_now())
            self._thread = threading.Thread(target=self._run, args=(held,), name="reindex", daemon=True)
            self._thread.start()
            return self._status

    def wait(self, timeout: float | None = None) -> ReindexStatus:
        """Block until the running rebuild ends (tests, CLI)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def _run(self, held: contextlib.ExitStack) -> None:
        t0 = time.perf_counter()
        done: dict[str, Any] = {"state": "failed", "error": "the build thread stopped"}
        try:
            encoder = self._encoder()
            build_on_disk(self.settings, encoder=encoder, locked=True, parse_apart=True)
            service = QAService(open_index(self.settings), encoder, self.settings)
            self._publish(service)
            done = {"state": "succeeded", "docs": len(service.index.docs), "chunks": len(service.index.chunks),
                    "error": None}
            log.warning("reindex done: %d documents, %d chunks", done["docs"], done["chunks"])
        except Exception as e:  # any failure: the previous index keeps serving
            log.exception("reindex failed")
            done = {"state": "failed", "error": f"{type(e).__name__}: {e}"}
        finally:
            # The status is final before the lock is free, so a next rebuild's status
            # cannot be overwritten by this one's result.
            with self._lock:
                self._status = replace(self._status, finished_at=_now(),
                                       seconds=round(time.perf_counter() - t0, 2), **done)
            held.close()

"""What keeps one client or one slow question from taking the server down: a per-client
rate limit (token bucket) and CPU work with a deadline.

Why the rate limiter is written here: slowapi wraps each route in a decorator that needs
a ``request`` parameter (its rate-limit headers a ``response`` one too) and reads its limits
from strings fixed at import time; ``limits``
(which slowapi wraps) offers fixed and sliding windows, which let a whole minute's quota
through in one second. A token bucket gives a steady rate with a small burst, and the exact
wait for Retry-After, in a few lines with an injectable clock for tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class RateLimiter:
    """A token bucket per client key: ``burst`` requests at once, refilled at
    ``per_minute`` a minute. ``per_minute`` 0 turns it off.

    At most ``max_clients`` buckets are kept (least recently seen dropped first), so a
    flood from many addresses cannot grow memory without bound. Thread-safe.
    """

    def __init__(self, per_minute: int, burst: int, *, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0  # tokens a second
        self.burst = float(max(1, burst))
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def hit(self, key: str) -> float:
        """Take one token for ``key``: 0 when allowed, else the seconds until one is free."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)  # most recently seen last
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        """``wait`` as a Retry-After value: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait)))


class Overloaded(Exception):
    """The work did not finish within its deadline (queued or running)."""


class CpuRunner:
    """Runs CPU-bound calls in threads, ``slots`` at a time (one per core), each within a
    deadline.

    A caller that gives up gets ``Overloaded`` at once. Work that has not started by
    then is skipped; work already running cannot be interrupted (numpy, FAISS) and
    finishes in its thread while still holding its slot, so abandoned requests never let
    more than ``slots`` calls compete for the cores.
    """

    def __init__(self, slots: int, timeout_s: float, max_threads: int = 64) -> None:
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(slots)
        # Waiting callers park in threads of their own pool, not anyio's default one
        # (which serves file responses and the database).
        self._threads = anyio.CapacityLimiter(max_threads)

    async def run(self, fn: Callable[[], T]) -> T:
        gave_up = threading.Event()

        def job() -> T:
            with self._slots:
                if gave_up.is_set():
                    raise Overloaded("abandoned before it started")
                return fn()

        if not self.timeout_s:
            return await anyio.to_thread.run_sync(job, limiter=self._threads)
        try:
            with anyio.fail_after(self.timeout_s):
                return await anyio.to_thread.run_sync(job, limiter=self._threads, abandon_on_cancel=True)
        except TimeoutError:
            gave_up.set()
            raise Overloaded(f"no answer within {self.timeout_s:g} s") from None

"""What keeps one client or one slow question from taking the server down: a per-client
rate limit (token bucket), the request guard that applies it with the body size limits and
deadlines (``Guard``, the app's outermost middleware), and CPU work with a deadline.

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
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")

# Methods whose body is read (and so limited in size).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# JSON is never a document to render or frame.
API_CSP = "default-src 'none'; frame-ancestors 'none'"


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


class Guard:
    """Outermost checks of every request, before any body is read or parsed: the per-client
    rate limit on ``/api/``, the body size limit (declared or streamed), and the security
    headers on every response (on errors too). Starlette's RequestBodyLimitMiddleware would
    do the size limit, but answers in plain text; every error here is JSON with a message."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter, max_body: int, body_timeout_s: float = 0.0,
                 body_rules: Callable[[Scope], tuple[int, float]] | None = None) -> None:
        self.app = app
        self.limiter = limiter
        self.max_body = max_body
        self.body_timeout_s = body_timeout_s
        # (size limit, seconds to arrive) of a request's body: larger and slower for some
        # (an admin's upload), else max_body and body_timeout_s
        self.body_rules = body_rules or (lambda _scope: (max_body, body_timeout_s))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if api:
                    headers.setdefault("Content-Security-Policy", API_CSP)
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        if api and self.limiter.enabled:
            client = scope.get("client")
            wait = self.limiter.hit(client[0] if client else "unknown")
            if wait:
                retry = RateLimiter.retry_after(wait)
                await JSONResponse({"detail": f"too many requests: try again in {retry} s"}, status_code=429,
                                   headers={"Retry-After": retry})(scope, receive, send_with_headers)
                return
        if scope["method"] in BODY_METHODS:
            body: bytes | None = None
            # A client trickling its body in holds a connection: it gets the same deadline
            # as an answer.
            limit, timeout = self.body_rules(scope)
            with anyio.move_on_after(timeout or math.inf) as reading:
                body = await self._read_body(scope, receive, limit)
            if reading.cancelled_caught:
                await JSONResponse({"detail": f"the request body did not arrive within {timeout:g} s"},
                                   status_code=408)(scope, receive, send_with_headers)
                return
            if body is None:
                await JSONResponse({"detail": f"the request body is larger than {limit} bytes"},
                                   status_code=413)(scope, receive, send_with_headers)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send_with_headers)

    async def _read_body(self, scope: Scope, receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None when it is (or says it will be) over the limit."""
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then waits as before."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay

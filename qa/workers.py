"""Several server processes on one port, each with a listening socket of its own.

``uvicorn --workers N`` binds one socket in the parent and every worker accepts from it:
the worker that wakes first takes every connection waiting, so ten keep-alive clients that
connect together were all served by one of the two workers while the other idled
(``ss -tnp``, five tries of ten clients: 10/0 every time), and 10 clients got one core's
throughput (207.6 answers/s, bench/run.py). Here each worker binds its own socket with
``SO_REUSEPORT`` and the kernel spreads new connections over them by address hash (6/4 to
8/2 in the same tries; 348.9 answers/s at 10 clients). Linux only; elsewhere the shared
socket stays. The price: a worker that dies resets the connections waiting in its own
socket's queue (a shared socket kept them for the others), until it is replaced.
uvicorn's own supervisor has no such mode (a pull request for it is still open), so this
small one starts the workers, starts a new one in place of one that dies (``run``), and
stops them all on SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
from multiprocessing.process import BaseProcess
from typing import Any

APP = "server:app"
# the exit status of a worker that could not start (the address taken, the app not
# importable): at launch the server stops with it (a mistake to see at once); a worker
# started in place of one that died is tried again, waiting longer each time, while the
# others go on serving
STARTUP_FAILURE = 3
# a worker that dies is started again after this long, doubled after each one that could
# not start, up to the longest (a crash loop does not spin)
RESTART_EVERY_S = 1.0
RESTART_LONGEST_S = 30.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def balanced() -> bool:
    """Whether the kernel spreads connections over sockets sharing a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound by a socket without ``SO_REUSEPORT``: a port held by
    anyone, another server of ours included, is not (else a second ``qa serve`` would
    silently share the port with the first)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel has free on ``host`` now, for a test's or the benchmark's own server
    (another process may take it before the server binds it; on loopback that is rare)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` in the port's ``SO_REUSEPORT`` group (not listening yet)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _exit_with_parent() -> None:
    """SIGTERM this process when the supervisor dies, even by SIGKILL (Linux prctl): an
    orphaned worker would go on holding the port."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the supervisor died before the call
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(app: str, host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    _exit_with_parent()
    try:
        sock = reuse_port_socket(host, port)
    except OSError as e:
        print(f"cannot bind {host}:{port}: {e}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
    try:
        server.run(sockets=[sock])
    except BaseException:  # uvicorn exits 1 when the app is not found; one that raises, raises
        if not server.started:
            traceback.print_exc()
            sys.exit(STARTUP_FAILURE)
        raise
    if not server.started:  # e.g. the app's startup failed
        sys.exit(STARTUP_FAILURE)


def run(host: str, port: int, workers: int, app: str = APP, **options: Any) -> int:
    """Serve ``app`` (an import string) on ``host:port`` with ``workers`` processes until SIGINT or
    SIGTERM; ``options`` go to ``uvicorn.Config`` (log_level, access_log, ...). Returns the
    exit status: 0, or 1 when the port is taken or a worker could not start."""
    if not balanced():
        import uvicorn

        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return 0
    if not port_is_free(host, port):
        print(f"{host}:{port} is in use: stop what holds it or choose another --port", file=sys.stderr, flush=True)
        return 1
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter each: nothing half-loaded is copied

    def start() -> BaseProcess:
        p = ctx.Process(target=_worker, args=(app, host, port, options), daemon=False)
        p.start()
        return p

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs = [start() for _ in range(workers)]
    last_start = [time.monotonic()] * workers
    replaced = [False] * workers  # this slot's worker is a replacement
    failed = [0] * workers  # replacements in a row that could not start
    status = 0
    try:
        while not stop.wait(0.2):
            for i, p in enumerate(procs):
                if p.is_alive():
                    continue
                if p.exitcode == STARTUP_FAILURE and not replaced[i]:
                    print(f"worker {p.pid} could not start; stopping", file=sys.stderr, flush=True)
                    status = 1
                    stop.set()
                    break
                if time.monotonic() - last_start[i] >= min(RESTART_LONGEST_S, RESTART_EVERY_S * 2 ** failed[i]):
                    failed[i] = failed[i] + 1 if p.exitcode == STARTUP_FAILURE else 0
                    print(f"worker {p.pid} exited ({p.exitcode}); starting another", file=sys.stderr, flush=True)
                    procs[i], last_start[i], replaced[i] = start(), time.monotonic(), True
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--no-access-log", dest="access_log", action="store_false")
    ap.add_argument("--app", default=APP, help="the ASGI app's import string")
    args = ap.parse_args(argv)
    return run(args.host, args.port, args.workers, app=args.app, log_level=args.log_level, access_log=args.access_log)


if __name__ == "__main__":
    raise SystemExit(main())

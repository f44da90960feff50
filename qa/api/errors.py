"""The app's exception handlers: every error is JSON ``{"detail": …}`` with a message in
words, never FastAPI's echo of the input nor Starlette's plain text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route


def _error_text(err: dict[str, Any]) -> str:
    if err.get("type") == "json_invalid":
        return f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'cannot be parsed')})"
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
    msg = str(err.get("msg", "invalid value"))
    return f"{'.'.join(loc)}: {msg}" if loc else msg


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default echoes the whole input back; a message and where is enough.
    errors = [{"loc": list(e.get("loc", ())), "msg": _error_text(e), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's "There was an error parsing the body" (this app raises no 400 itself):
        # JSON that is not UTF-8, or nested deeper than the parser goes.
        why = {UnicodeDecodeError: "not UTF-8 text", RecursionError: "nested too deeply"}.get(
            type(exc.__cause__), type(exc.__cause__).__name__)
        return JSONResponse({"detail": [{"loc": ["body"], "msg": f"the body is not valid JSON ({why})",
                                         "type": "json_invalid"}]}, status_code=422)
    if exc.status_code == 405:
        # Starlette names only the first route's methods; a path with a route per method
        # (GET and POST /api/admin/reindex) allows all of them.
        allowed = {m for r in _flat_routes(request.app.router.routes) if isinstance(r, Route)
                   and r.matches(request.scope)[0] == Match.PARTIAL for m in (r.methods or ())}
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405,
                            headers={"Allow": ", ".join(sorted(allowed))})
    return await http_exception_handler(request, exc)


def _flat_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, those of included routers (qa/api/) too: FastAPI keeps an included
    router as one entry that holds it (``original_router``)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        yield from _flat_routes(inner.routes) if inner is not None else (r,)

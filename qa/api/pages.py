"""The chat widget (``/widget.js``, ``/widget.css``) and its demo page (``/``), served from
qa/web with their security headers; none of them is in the API schema."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# What the demo page (and so the widget, which needs nothing more) may load: only this origin.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

router = APIRouter(include_in_schema=False)


def asset(name: str, media_type: str, **headers: str) -> FileResponse:
    # no-cache: a browser revalidates, so a new widget reaches visitors on their next load
    return FileResponse(WEB_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache", **headers})


@router.get("/")
async def demo_page() -> FileResponse:
    return asset("index.html", "text/html; charset=utf-8", **{"Content-Security-Policy": PAGE_CSP})


@router.get("/widget.js")
async def widget_js() -> FileResponse:
    return asset("widget.js", "text/javascript; charset=utf-8")


@router.get("/widget.css")
async def widget_css() -> FileResponse:
    return asset("widget.css", "text/css; charset=utf-8")

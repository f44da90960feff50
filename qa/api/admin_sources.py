"""The admin API of the sources: upload a document, remove one, list them.

``POST /api/admin/sources`` converts an uploaded HTML, PDF, DOCX, Markdown or text file
(qa/importing.py: a child process with a time and memory bound), writes it as a source
under the index's build lock and starts the atomic reindex (qa/reindex.py): questions are
answered by the current index until the new one is loaded and swapped in. A file that
cannot be taken gets a 4xx with the reason and leaves the sources and the index as they
were. ``DELETE /api/admin/sources/{doc_id}`` removes a source the same way, and
``GET /api/admin/sources`` lists them.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from pydantic import BaseModel, Field, create_model
from starlette.types import Scope

from qa.api.deps import AppSettings, ReindexerDep, admin, reindex_status
from qa.api.schemas import ReindexOut, errors
from qa.config import Settings
from qa.importing import ImportRefused, Prepared, SourceInfo, list_sources, prepare, remove_source, write_source
from qa.index import BuildInProgress
from qa.reindex import Reindexer

log = logging.getLogger("qa.sources")

UPLOAD_PATH = "/api/admin/sources"
# What a multipart upload adds to the file's bytes (boundaries, part headers, form fields).
UPLOAD_OVERHEAD = 64 << 10
# What each kind of refused document is answered with.
STATUS = {"unsupported": 415, "too_large": 413, "exists": 409, "invalid": 422, "bad_id": 422, "missing": 404,
          "last": 409}
# Conversions at once (each a child process of up to Settings.import_memory_mb): uploads
# are rare admin work, and the cores belong to the visitors' questions.
EXTRACTIONS_AT_ONCE = 1


class SourceInfoOut(BaseModel):
    doc_id: str
    title: str | None
    lang: str | None
    date: str | None
    url: str | None
    type: str = Field(description="the original's format: html, pdf, docx, md or txt")
    bytes: int = Field(description="the original's size")
    added: str = Field(description="when it was added (UTC, ISO 8601)")
    chars: int = Field(description="characters of the extracted text that the index reads")
    pages: int | None = Field(description="pages of a PDF")
    original: str | None = Field(description="the original's path under the sources folder, when kept")


class SourceListOut(BaseModel):
    sources: list[SourceInfoOut]


SourceChangeOut = create_model(
    "SourceChangeOut", source=(SourceInfoOut, ...), reindex=(ReindexOut, ...),
    __doc__="The source added or removed, and the reindex that puts it in (or out of) the index.")


def refused(e: ImportRefused) -> HTTPException:
    return HTTPException(STATUS[e.reason], str(e))


def body_rules(settings: Settings) -> Callable[[Scope], tuple[int, float]]:
    """The body size limit and deadline of each request (qa.limits.Guard's ``body_rules``).

    An upload may be as large as a document and take as long to arrive as a slow link
    needs, but only with the admin token: anyone else's body is held to the usual limits
    and refused before it is read whole."""
    usual = settings.max_body_bytes, settings.request_timeout_s

    def rules(scope: Scope) -> tuple[int, float]:
        if scope["method"] == "POST" and scope["path"] == UPLOAD_PATH and settings.admin_token:
            scheme, _, given = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(given, settings.admin_token.get_secret_value().encode()):
                return (max(settings.max_body_bytes, settings.max_upload_bytes + UPLOAD_OVERHEAD),
                        max(settings.request_timeout_s, settings.upload_timeout_s))
        return usual

    return rules


router = APIRouter(tags=["admin"], dependencies=[Depends(admin)])


async def extraction_slots(request: Request) -> anyio.CapacityLimiter:
    """The app's limiter of conversions at once, made on its first upload. One an app, not
    one a module: an asyncio limiter belongs to the event loop it first waits in, and the
    tests run several apps, each in a loop of its own."""
    state = request.app.state
    slots: anyio.CapacityLimiter | None = getattr(state, "extracting", None)
    if slots is None:  # no await since the check: no other request can make a second one
        slots = state.extracting = anyio.CapacityLimiter(EXTRACTIONS_AT_ONCE)
    return slots


async def change(request: Request, reindexer: Reindexer, what: str, write: Callable[[], SourceInfo]) -> dict[str, Any]:
    """``write`` under the build lock, then the reindex that serves it."""
    done: list[SourceInfo] = []
    try:
        await anyio.to_thread.run_sync(partial(reindexer.start, before=lambda: done.append(write())))
    except BuildInProgress as e:
        raise HTTPException(409, f"a reindex is running ({e}); try again when it has finished") from e
    except ImportRefused as e:
        raise refused(e) from e
    info = done[0]
    # an audit line for operators: what changed in the sources, and by which route
    log.warning("source %s %s (%s, %d bytes, %d characters); reindexing", info.doc_id, what, info.type, info.bytes,
                info.chars)
    return {"source": info.to_json(), "reindex": reindex_status(request.app.state, reindexer)}


@router.get(UPLOAD_PATH, response_model=SourceListOut, responses=errors(401, 404, 429))
async def get_sources(settings: AppSettings) -> dict[str, Any]:
    """The sources: each one's original type, size and the date it was added."""
    found = await anyio.to_thread.run_sync(list_sources, settings.sources_dir)
    return {"sources": [s.to_json() for s in found]}


@router.post(UPLOAD_PATH, response_model=SourceChangeOut, status_code=202,
             responses=errors(401, 404, 408, 409, 413, 415, 422, 429))
async def add_source(
    request: Request,
    settings: AppSettings,
    reindexer: ReindexerDep,
    extracting: Annotated[anyio.CapacityLimiter, Depends(extraction_slots)],
    file: Annotated[UploadFile, File(description="an .html/.htm, .pdf, .docx, .md or .txt file")],
    doc_id: Annotated[str | None, Form(description="the source's id (default: from the file name)")] = None,
    lang: Annotated[Literal["en", "ru"] | None, Form(description="wins over the document's own")] = None,
    title: Annotated[str | None, Form(max_length=500)] = None,
    url: Annotated[str | None, Form(max_length=2000)] = None,
    date: Annotated[str | None, Form(description="YYYY-MM-DD")] = None,
    replace: Annotated[bool, Form(description="replace a source with the same id")] = False,
) -> dict[str, Any]:
    """Add a document: converted to text (HTML main content, PDF text with its page map,
    DOCX body, Markdown without markup), written as a source with its original kept,
    then the index is rebuilt in the background and swapped in (poll
    ``GET /api/admin/reindex``); questions are answered by the current index meanwhile."""
    data = await file.read()
    try:
        prepared: Prepared = await anyio.to_thread.run_sync(
            partial(prepare, data, file.filename or "", settings, doc_id=doc_id or None, lang=lang,
                    title=title or None, url=url or None, date=date or None, replace=replace), limiter=extracting)
    except ImportRefused as e:
        log.warning("upload %r refused: %s", file.filename, e)
        raise refused(e) from e
    what = "added (replacing one with its id)" if replace else "added"
    return await change(request, reindexer, what, partial(write_source, prepared, settings.sources_dir, replace))


@router.delete(UPLOAD_PATH + "/{doc_id}", response_model=SourceChangeOut, status_code=202,
               responses=errors(401, 404, 408, 409, 413, 429))
async def delete_source(request: Request, settings: AppSettings, reindexer: ReindexerDep, doc_id: str) -> dict[str, Any]:
    """Remove a source (its text, metadata and original) and rebuild the index without it."""
    return await change(request, reindexer, "removed", partial(remove_source, settings.sources_dir, doc_id))

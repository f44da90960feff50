"""Separate a page's content from its site furniture without touching the text.

The result is a list of content spans (offsets into the file as stored), so chunks cut
from them still point at the exact source characters.

Hand-written on purpose: boilerplate libraries (jusText, trafilatura) classify HTML
blocks by markup and link density. Our sources are plain text where that signal is
gone, and jusText keeps a cookie notice (long, full of stop words) as "good" prose.
The rules below are general (no file names, no line numbers):

1. A footer heading ("Latest events", "Most popular", "Самое популярное", "Читайте
   также", ...) starts the page footer: it and everything after it is excluded.
2. A cookie / consent notice is excluded, with the short button lines right after it.
3. Link stubs are excluded: a line that is only a link, only a URL, or "label: URL".
4. A bare site name ("mos.ru") on its own line is a source badge, not content.
5. A run of many short lines without sentence punctuation that are not list items (or
   table rows) is a headline / navigation list.
"""

from __future__ import annotations

import re

from qa.types import Span

# Bump when the rules change: the index manifest records it, so an index built
# with other rules is rebuilt instead of served.
# 2: a table row ("| cell | cell |", as imported documents write tables) is a list item
CLEANING_VERSION = 2

_FOOTER_HEADINGS = re.compile(
    r"^(latest (events|news)|most (popular|read|viewed)|popular( now)?|read (also|more)|"
    r"see also|related (news|articles|stories)|more news|other news|news feed|"
    r"самое популярное|популярное|читайте также|смотрите также|последние (новости|события)|"
    r"другие новости|новости по теме|ещё по теме|еще по теме|лента новостей)$",
    re.IGNORECASE,
)
_COOKIE = re.compile(r"\bc+o+k+ies?\b|\bкуки\b|файл\w* cookie", re.IGNORECASE)
_MD_LINK = r"\[[^\]\n]*\]\([^)\n]*\)"
_URL = r"<?(?:https?://|www\.)\S+?>?"
_LINK_STUB = re.compile(rf"^(?:[^:\n]{{0,60}}:\s*)?(?:(?:{_MD_LINK}|{_URL})\s*)+$", re.IGNORECASE)
_BARE_DOMAIN = re.compile(r"^(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}$", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•–—|]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"[.!?…:;»\"”)]$")
_MAX_SHORT_WORDS = 5
_HEADLINE_RUN = 6


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line, without its line break."""
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        out.append((pos, pos + len(body)))
        pos += len(line)
    return out


def _is_headline_like(line: str) -> bool:
    s = line.strip()
    return bool(s) and not _LIST_ITEM.match(s) and not _SENTENCE_END.search(s)


def boilerplate_lines(text: str) -> list[bool]:
    """One flag a line: True where the line is site furniture, not content."""
    lines = _lines(text)
    bodies = [text[a:b].strip() for a, b in lines]
    flags = [False] * len(lines)
    for i, s in enumerate(bodies):
        if _FOOTER_HEADINGS.match(s):
            for j in range(i, len(lines)):
                flags[j] = True
            break
    for i, s in enumerate(bodies):
        if not s:
            continue
        if _COOKIE.search(s) and not flags[i]:
            flags[i] = True
            j = i + 1
            while j < len(bodies) and bodies[j] and len(bodies[j].split()) <= _MAX_SHORT_WORDS:
                flags[j] = True
                j += 1
        if _LINK_STUB.match(s) or _BARE_DOMAIN.match(s):
            flags[i] = True
    # A long run of punctuation-less, non-list lines (blank lines allowed in between)
    # is a list of headlines or menu entries, not prose.
    run: list[int] = []
    for i, s in enumerate([*bodies, "."]):
        if not s and i < len(bodies):
            continue
        if _is_headline_like(s) and i < len(bodies):
            run.append(i)
            continue
        if len(run) >= _HEADLINE_RUN:
            for j in run:
                flags[j] = True
        run = []
    return flags


def content_spans(text: str) -> list[Span]:
    """Maximal runs of content lines (blank lines inside a run are kept), trimmed.

    A run never crosses a boilerplate line, so no chunk can mix content with furniture.
    """
    spans: list[Span] = []
    cur: list[int] | None = None
    for (a, b), bad in zip(_lines(text), boilerplate_lines(text), strict=True):
        if bad:
            if cur:
                spans.append(Span(cur[0], cur[1]))
            cur = None
        elif text[a:b].strip():
            lead = len(text[a:b]) - len(text[a:b].lstrip())
            trail = len(text[a:b].rstrip())
            if cur is None:
                cur = [a + lead, a + trail]
            else:
                cur[1] = a + trail
    if cur:
        spans.append(Span(cur[0], cur[1]))
    return spans

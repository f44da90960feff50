"""Plain text out of the documents support staff have: HTML pages, PDF, DOCX, Markdown, text.

Each format is read by the library made for it: trafilatura keeps an HTML page's main
content (navigation, cookie notices, headline lists, footers and scripts left out; the
choice is measured in docs/import.md), pypdf reads a PDF's text page by page, python-docx
a Word document's body, markdown-it-py a Markdown file's blocks. The result is the text a
source file holds: one paragraph, heading, list item or table row a line, because
sentences are split within lines (qa/text.py) and an answer never runs across a line break.

This module runs in a child process with a time and memory bound (``python -m qa.extract``,
started by qa/importing.py), so it imports nothing of the index or the models: a zip bomb
or a pathological PDF costs the child, never the server.
"""

from __future__ import annotations

import io
import json
import re
import sys
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

# File name endings -> format. Anything else is refused before it is read.
FORMATS: dict[str, str] = {".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx",
                           ".md": "md", ".markdown": "md", ".txt": "txt"}

# A DOCX is a zip archive: its parts are checked before anything is decompressed. Word's
# own files compress about 3-10x (XML); a zip bomb compresses thousands of times.
DOCX_MAX_MEMBERS = 10_000
DOCX_MAX_UNPACKED = 256 << 20
DOCX_MAX_RATIO = 200
# A PDF whose pages hold fewer letters than this on average has no usable text layer
# (a scan): it is refused, as OCR is not done here.
PDF_MIN_CHARS_PER_PAGE = 20
# Less text than this after extraction is no document.
MIN_TEXT_CHARS = 20

_LIST_OR_ROW = re.compile(r"^(?:[-*•–] |\d+[.)] |\| )")
_SENTENCE_END = re.compile(r"[.!?…:;»\"”)]$")
_TABLE_RULE = re.compile(r"^\|(?:\s*:?-+:?\s*\|)+$")
_BULLET = re.compile(r"^(?:[•▪●◦‣∙·*–-]|\d{1,3}[.)])\s")


class ExtractionError(ValueError):
    """The file cannot be converted: what is wrong with it, in words."""


@dataclass(frozen=True)
class Extracted:
    """A document's text and what it says of itself. ``pages``: the offset in ``text``
    where each page starts (PDF only; page N starts at ``pages[N - 1]``)."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    pages: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Extracted:
        return cls(text=data["text"], meta=dict(data.get("meta") or {}), pages=tuple(data.get("pages") or ()))


# ------------------------------------------------------------------ text shared by all formats


def tidy_lines(lines: Iterable[str]) -> str:
    """Blocks one a line, blank lines between paragraphs; consecutive list items and table
    rows stay together, so a list reads as one block. Whitespace inside a line is evened
    out (PDF and Word text carries tabs, non-breaking and zero-width spaces)."""
    out: list[str] = []
    prev_kind = ""
    for raw in lines:
        line = " ".join(raw.replace("\u00ad", "").replace("\u200b", "").split())
        if not line or _TABLE_RULE.match(line):  # a Markdown table's |---|---| carries no text
            continue
        kind = ("row" if line.startswith("| ") else "item") if _LIST_OR_ROW.match(line) else ""
        if out:
            out.append("\n" if kind and kind == prev_kind else "\n\n")
        out.append(line)
        prev_kind = kind
    return "".join(out)


def _enough(text: str, what: str) -> str:
    if sum(ch.isalnum() for ch in text) < MIN_TEXT_CHARS:
        raise ExtractionError(f"no text found in this {what}")
    return text


def _finish(text: str, what: str) -> str:
    return _enough(unicodedata.normalize("NFC", text).strip(), what) + "\n"


def decode_text(data: bytes, what: str) -> str:
    """Bytes of a text file as text: UTF-8 (a BOM dropped), else the encoding
    charset-normalizer finds (Windows-1251 files are common in Russian offices). Binary
    content is refused."""
    if b"\x00" in data[:65536]:
        raise ExtractionError(f"this {what} is binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise ExtractionError(f"this {what} is not text in any known encoding")
    return str(best)


def _looks_binary(text: str) -> bool:
    sample = text[:65536]
    bad = sum(1 for ch in sample if ch == "\ufffd" or (unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f"))
    return bad > max(8, len(sample) // 100)


def _iso_date(value: Any) -> str | None:
    """A date or datetime (or an ISO-looking string) as YYYY-MM-DD."""
    if value is None:
        return None
    if hasattr(value, "date") and callable(value.date):
        value = value.date()
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10]
    m = re.search(r"\b(19|20)\d\d-\d\d-\d\d\b", str(value))
    return m.group(0) if m else None


def _lang(value: Any) -> str | None:
    """"en-US", "ru_RU", "RU" -> "en" / "ru"; other languages are left to detection."""
    code = str(value or "").strip().lower()[:2]
    return code if code in ("en", "ru") else None


def _clean_meta(meta: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        if isinstance(v, str):
            v = " ".join(v.split())[:500]
        if v not in (None, "", [], {}):
            out[k] = v
    return out


# ------------------------------------------------------------------ HTML


def extract_html(data: bytes) -> Extracted:
    """The page's main content by trafilatura: title, paragraphs, lists and tables of the
    article; navigation, cookie notices, related and most-read lists, comments, footers,
    scripts and styles are left out. Metadata: <title>/og:title, <html lang>, the
    publication date (htmldate), the canonical URL and the site name."""
    import trafilatura
    from trafilatura.settings import Document

    text = decode_text(data, "HTML file")
    if _looks_binary(text):
        raise ExtractionError("this HTML file is binary, not text")
    if not re.search(r"<\s*(html|body|p|div|article|h[1-6]|table|ul|br)\b", text[:1_000_000], re.IGNORECASE):
        raise ExtractionError("this HTML file has no HTML markup (save it as .txt if it is plain text)")
    tree = trafilatura.load_html(text)
    if tree is None:
        raise ExtractionError("this HTML file cannot be parsed")
    page_lang = _lang(tree.get("lang")) or _lang(next(iter(tree.xpath("//meta[@http-equiv='content-language']/@content")), None))
    # the tree already parsed (extraction prunes it: nothing reads it after)
    found = trafilatura.bare_extraction(tree, with_metadata=True, include_comments=False, include_tables=True,
                                        include_links=False, include_images=False, favor_precision=True,
                                        deduplicate=True)
    # None when nothing was found (a dict only with as_dict=True, which is not asked for)
    if not isinstance(found, Document) or not found.text or not found.text.strip():
        raise ExtractionError("no article text found in this HTML page")
    body = found.text
    title = found.title or ""
    lines = body.splitlines()
    # The headline is in the page's metadata; the text starts with it (as pasted pages do),
    # so a question about the title finds its document.
    if title and not any(title.strip() == line.strip() for line in lines[:3]):
        lines.insert(0, title)
    meta = _clean_meta({"title": title, "lang": page_lang or _lang(found.language), "date": _iso_date(found.date),
                        "url": found.url if (found.url or "").startswith(("http://", "https://")) else None,
                        "publisher": found.sitename})
    return Extracted(_finish(tidy_lines(lines), "HTML page"), meta)


# ------------------------------------------------------------------ PDF


def _reflow(page_text: str) -> list[str]:
    """pypdf gives a PDF's visual lines; a paragraph's lines are joined back into one
    (a word hyphenated at a line end is joined whole), so a sentence is one line again.
    A line ends its paragraph when it ends a sentence well short of the page's line
    width, or is short and the next line starts anew (a heading); bullets start a line."""
    lines = [" ".join(line.split()) for line in page_text.splitlines()]
    width = sorted((len(line) for line in lines if line), reverse=True)
    full = width[len(width) // 4] if width else 0  # a typical full line, robust to a few long ones
    out: list[str] = []
    cur = ""
    for i, line in enumerate(lines):
        if not line:
            if cur:
                out.append(cur)
            cur = ""
            continue
        if cur and _BULLET.match(line):
            out.append(cur)
            cur = ""
        if not cur:
            cur = line
        elif cur.endswith("-") and not cur.endswith(" -") and line[:1].islower():
            cur = cur[:-1] + line
        else:
            cur = f"{cur} {line}"
        nxt = next((x for x in lines[i + 1:i + 2] if x), "")
        short = len(line) < 0.8 * full
        if (short and _SENTENCE_END.search(line)) or (len(line) < 0.6 * full and nxt[:1].isupper()
                                                       and not _SENTENCE_END.search(line) and not line.endswith(",")):
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


_PAGE_NUMBER = re.compile(r"^(?:(?:page|p\.|стр\.?|страница|с\.)\s*)?[-–—]?\s*\d{1,4}\s*[-–—]?"
                          r"(?:\s*(?:of|из|/)\s*\d{1,4})?$", re.IGNORECASE)
# Lines this near a page's top or bottom may be its running header or footer.
_EDGE_LINES = 2


def _without_running_lines(texts: list[str]) -> list[str]:
    """Pages without their running headers and footers: a line near the top or bottom of a
    page that recurs (digits aside) on half the pages or more, and a bare page number
    ("12", "- 12 -", "Page 3 of 20", "стр. 5") there. Left in, each would be a "sentence"
    of its own between a page's last paragraph and the next page's first."""
    pages = [t.splitlines() for t in texts]

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()).lower())

    def edges(lines: list[str]) -> set[int]:
        filled = [i for i, line in enumerate(lines) if line.strip()]
        return set(filled[:_EDGE_LINES] + filled[-_EDGE_LINES:])

    seen: dict[str, int] = {}
    for lines in pages:
        for k in {key(lines[i]) for i in edges(lines)}:
            seen[k] = seen.get(k, 0) + 1
    running = {k for k, n in seen.items() if len(pages) >= 3 and n >= max(3, len(pages) / 2)}
    out = []
    for lines in pages:
        drop = {i for i in edges(lines) if key(lines[i]) in running or _PAGE_NUMBER.match(lines[i].strip())}
        out.append("\n".join(line for i, line in enumerate(lines) if i not in drop))
    return out


def extract_pdf(data: bytes) -> Extracted:
    """Text page by page by pypdf, with the offset where each page starts (the page map
    that lets a citation say its page), without running headers, footers and page
    numbers. Metadata: title, author, creation date, pages.
    Encrypted PDFs are refused unless they open with the empty password (PDFs that only
    restrict printing or copying); a PDF without a text layer is refused (no OCR)."""
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PyPdfError

    if not data.lstrip()[:5].startswith(b"%PDF-"):
        raise ExtractionError("this is not a PDF file (no %PDF header)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError, PdfReadError) as e:
                raise ExtractionError(f"this PDF is encrypted and cannot be opened here ({e}); "
                                      "save an unencrypted copy") from None
            if not opened:
                raise ExtractionError("this PDF is encrypted with a password; save an unencrypted copy")
        texts = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
    except ExtractionError:
        raise
    except FileNotDecryptedError:
        raise ExtractionError("this PDF is encrypted with a password; save an unencrypted copy") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, AssertionError,
            RecursionError, OSError, zlib.error) as e:
        raise ExtractionError(f"this PDF is damaged and cannot be read ({type(e).__name__}: {e})"[:300]) from None
    if not texts:
        raise ExtractionError("this PDF has no pages")
    letters = sum(ch.isalnum() for t in texts for ch in t)
    if letters < PDF_MIN_CHARS_PER_PAGE * len(texts):
        raise ExtractionError(f"this PDF has no text layer ({letters} letters on {len(texts)} pages: a scan?); "
                              "OCR is not done here, so add a PDF with text or the text itself")
    # Each page is normalized and tidied on its own, before the offsets are counted: the
    # page map indexes the text exactly as written.
    parts: list[str] = []
    pages: list[int] = []
    pos = 0
    for t in _without_running_lines([unicodedata.normalize("NFC", t) for t in texts]):
        block = tidy_lines(_reflow(t))
        if pos and block:
            parts.append("\n\n")
            pos += 2
        pages.append(pos)  # an empty page starts where the next one does
        parts.append(block)
        pos += len(block)
    body = _enough("".join(parts), "PDF") + "\n"
    meta: dict[str, Any] = {"page_count": len(texts)}
    if info is not None:
        meta |= {"title": info.title, "author": info.author, "date": _iso_date(_safe(lambda: info.creation_date))}
    return Extracted(body, _clean_meta(meta), tuple(pages))


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except (ValueError, TypeError):  # a malformed date in the info dictionary
        return None


# ------------------------------------------------------------------ DOCX


def check_zip(data: bytes, what: str = "DOCX") -> None:
    """Refuse an archive that is not a zip, or that would unpack to far more than it
    weighs (a zip bomb), from its directory alone: nothing is decompressed here."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ExtractionError(f"this {what} is not a zip archive (damaged, or not a Word document)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ExtractionError(f"this {what} is a damaged zip archive ({e})") from None
    if len(infos) > DOCX_MAX_MEMBERS:
        raise ExtractionError(f"this {what} has {len(infos)} parts (at most {DOCX_MAX_MEMBERS})")
    total = sum(i.file_size for i in infos)
    if total > DOCX_MAX_UNPACKED:
        raise ExtractionError(f"this {what} would unpack to {total >> 20} MB (at most {DOCX_MAX_UNPACKED >> 20} MB)")
    for i in infos:
        if i.file_size > 1 << 20 and i.file_size > DOCX_MAX_RATIO * max(1, i.compress_size):
            ratio = i.file_size // max(1, i.compress_size)
            raise ExtractionError(f"this {what} looks like a zip bomb: {i.filename} unpacks to {ratio} times its size")
    if "word/document.xml" not in {i.filename for i in infos}:
        raise ExtractionError(f"this {what} is a zip archive but not a Word document (no word/document.xml)")


def _cells(row: Any) -> list[str]:
    # python-docx repeats a merged cell once per grid column it spans: each is kept once.
    out: list[str] = []
    seen: set[int] = set()
    for cell in row.cells:
        if id(cell._tc) in seen:
            continue
        seen.add(id(cell._tc))
        out.append(" ".join(cell.text.split()))
    return out


def _docx_blocks(doc: Any) -> Iterator[str]:
    from docx.table import Table

    for block in doc.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = _cells(row)
                if any(cells):
                    yield "| " + " | ".join(cells) + " |"
            continue
        text = block.text
        style = (block.style.name if block.style is not None else "") or ""
        p_pr = block._p.pPr
        numbered = p_pr is not None and p_pr.numPr is not None
        if text.strip() and (numbered or style.startswith("List")):
            yield "- " + text
        else:
            yield text


def extract_docx(data: bytes) -> Extracted:
    """The body of a Word document by python-docx, in order: headings and paragraphs a
    line each, list items as "- item", table rows as "| cell | cell |". Headers, footers,
    footnotes, comments and images are left out. Metadata: the core properties (title,
    author, language, last modified or created date)."""
    check_zip(data)
    import docx
    from docx.opc.exceptions import OpcError
    from lxml.etree import LxmlError

    try:
        doc = docx.Document(io.BytesIO(data))
        lines = list(_docx_blocks(doc))
        props = doc.core_properties
        meta = {"title": props.title, "author": props.author, "lang": _lang(props.language),
                "date": _iso_date(props.modified or props.created)}
    except (OpcError, LxmlError, KeyError, ValueError, AttributeError, zipfile.BadZipFile, OSError, zlib.error) as e:
        raise ExtractionError(f"this DOCX is damaged and cannot be read ({type(e).__name__}: {e})"[:300]) from None
    return Extracted(_finish(tidy_lines(lines), "DOCX"), _clean_meta(meta))


# ------------------------------------------------------------------ Markdown and text


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_FRONT_KEY = re.compile(r"^(title|date|lang|language|url)\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def _inline_text(token: Any) -> str:
    parts = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def extract_markdown(data: bytes) -> Extracted:
    """Markdown by markdown-it-py (CommonMark with tables): headings, paragraphs, list
    items ("- item", "1. item"), table rows and code blocks a line each, with the markup
    removed and links reduced to their text. Images and raw HTML blocks are left out.
    Metadata: a front-matter block's title, date, lang and url, else the first heading."""
    from markdown_it import MarkdownIt

    text = decode_text(data, "Markdown file")
    meta: dict[str, Any] = {}
    if m := _FRONT_MATTER.match(text):
        for key, value in _FRONT_KEY.findall(m.group(1)):
            meta[{"language": "lang"}.get(key.lower(), key.lower())] = value.strip("\"'")
        text = text[m.end():]
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    lines: list[str] = []
    lists: list[list[int]] = []  # per open list: [next number] (0: bullets)
    row: list[str] | None = None
    item_start = False
    first_heading = None
    for at, tok in enumerate(tokens):
        kind = tok.type
        if kind == "bullet_list_open":
            lists.append([0])
        elif kind == "ordered_list_open":
            lists.append([int(tok.attrs.get("start", 1) or 1)])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            item_start = True
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and row is not None:
            lines.append("| " + " | ".join(row) + " |")
            row = None
        elif kind == "inline":
            content = _inline_text(tok)
            if row is not None:
                row.append(" ".join(content.split()))
            elif item_start and lists:
                n = lists[-1]
                marker = "-" if n[0] == 0 else f"{n[0]}."
                if n[0]:
                    n[0] += 1
                lines.append(f"{marker} {content}")
                item_start = False
            else:
                lines.append(content)
        elif kind in ("fence", "code_block"):
            lines.extend(tok.content.splitlines())
        elif kind == "heading_open":
            lines.append("")
        if kind == "inline" and first_heading is None and at and tokens[at - 1].type == "heading_open":
            first_heading = _inline_text(tok)
    meta.setdefault("title", first_heading)
    meta = {"title": meta.get("title"), "date": _iso_date(meta.get("date")), "lang": _lang(meta.get("lang")),
            "url": meta.get("url") if str(meta.get("url", "")).startswith(("http://", "https://")) else None}
    return Extracted(_finish(tidy_lines(lines), "Markdown file"), _clean_meta(meta))


def extract_txt(data: bytes) -> Extracted:
    """A text file as it is (UTF-8, or converted from its encoding), line breaks made "\\n"."""
    text = decode_text(data, "text file")
    if _looks_binary(text):
        raise ExtractionError("this text file is binary, not text")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip("\n")
    if sum(ch.isalnum() for ch in text) < MIN_TEXT_CHARS:
        raise ExtractionError("no text found in this text file")
    return Extracted(text + "\n")


EXTRACTORS = {"html": extract_html, "pdf": extract_pdf, "docx": extract_docx, "md": extract_markdown, "txt": extract_txt}


def extract(data: bytes, kind: str) -> Extracted:
    """``data`` of format ``kind`` (a value of ``FORMATS``) as text; ``ExtractionError`` says why not."""
    if kind not in EXTRACTORS:
        raise ExtractionError(f"unknown format {kind!r}")
    return EXTRACTORS[kind](data)


# ------------------------------------------------------------------ the bounded child process

EXIT_REFUSED = 3
EXIT_MEMORY = 4


def _child(argv: list[str]) -> int:
    """``python -m qa.extract KIND PATH MEMORY_MB CPU_S``: one JSON object on stdout."""
    import resource

    kind, path, memory_mb, cpu_s = argv[0], argv[1], int(argv[2]), int(argv[3])
    # Set before anything is read: the kernel stops the child, not the server, when a file
    # asks for more memory or CPU time than a document ever needs.
    if memory_mb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    if cpu_s > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    out = sys.stdout
    try:
        with open(path, "rb") as f:
            result: dict[str, Any] = {"ok": extract(f.read(), kind).to_json()}
        code = 0
    except ExtractionError as e:
        result, code = {"error": str(e)}, EXIT_REFUSED
    except MemoryError:
        result, code = {"error": f"converting it needed more than {memory_mb} MB of memory"}, EXIT_MEMORY
    except RecursionError:
        result, code = {"error": "it is nested too deeply to convert"}, EXIT_REFUSED
    out.write(json.dumps(result, ensure_ascii=False))
    out.flush()
    return code


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))

"""Real documents made at test time: PDFs by fpdf2 (Cyrillic in the DejaVu font that
matplotlib ships), DOCX by python-docx, Markdown and text, and the bad files support
staff run into (damaged, encrypted, scanned, zip bombs, binaries). The hand-written news
pages are files in tests/data/import/."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

DATA = Path(__file__).parent / "data" / "import"
NEWS_EN = DATA / "news-en.html"
NEWS_RU = DATA / "news-ru.html"


def font_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def make_pdf(pages: list[list[str]], *, title: str | None = None, author: str | None = None,
             created: dt.datetime | None = None, headings: list[str] | None = None, running: str | None = None) -> bytes:
    """A PDF with a text layer: one list of paragraphs a page (wrapped by fpdf2 into lines,
    as a real PDF's are), an optional heading on each page, and with ``running`` that
    running header on every page and a "Page N of M" footer."""
    from fpdf import FPDF

    class Report(FPDF):
        def header(self) -> None:
            if running:
                self.set_font("DejaVu", size=8)
                self.cell(0, 5, running, new_x="LMARGIN", new_y="NEXT")
                self.ln(4)

        def footer(self) -> None:
            if running:
                self.set_y(-15)
                self.set_font("DejaVu", size=8)
                self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="C")

    pdf = Report(format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.add_font("DejaVu", fname=str(font_path()))
    if title:
        pdf.set_title(title)
    if author:
        pdf.set_author(author)
    pdf.set_creation_date(created or dt.datetime(2024, 3, 15, 12, 0, tzinfo=dt.UTC))
    for n, paragraphs in enumerate(pages):
        pdf.add_page()
        if headings:
            pdf.set_font("DejaVu", size=16)
            pdf.multi_cell(0, 9, headings[n], new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
        pdf.set_font("DejaVu", size=11)
        for para in paragraphs:
            pdf.multi_cell(0, 6, para, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    return bytes(pdf.output())


def make_scanned_pdf(pages: int = 2) -> bytes:
    """Pages with drawings and no text: what a scan looks like to a text extractor."""
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        for i in range(20):
            pdf.rect(20 + i * 3, 20 + i * 8, 120, 5, style="F")
    return bytes(pdf.output())


def encrypt_pdf(data: bytes, user_password: str, owner_password: str = "owner-secret") -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(*, title: str = "Technopark Omega annual report", language: str = "en-US") -> bytes:
    """A Word document with a heading, paragraphs, a bulleted list, a numbered list and a table."""
    import docx

    doc = docx.Document()
    props = doc.core_properties
    props.title = title
    props.author = "Omega press office"
    props.language = language
    props.created = dt.datetime(2023, 1, 10, 9, 0)
    props.modified = dt.datetime(2024, 2, 20, 9, 0)
    doc.add_heading("Technopark Omega in 2023", level=1)
    doc.add_paragraph("Technopark Omega opened its clean room for microelectronics in May 2023. "
                      "The clean room covers 1,200 square metres.")
    doc.add_heading("Residents", level=2)
    doc.add_paragraph("The technopark hosts companies in three fields:")
    for item in ("photonics and lasers", "medical devices", "industrial robotics"):
        doc.add_paragraph(item, style="List Bullet")
    doc.add_paragraph("Steps to become a resident:")
    for item in ("send an application", "pass the expert council", "sign the lease"):
        doc.add_paragraph(item, style="List Number")
    table = doc.add_table(rows=4, cols=3)
    for r, row in enumerate([("Year", "Residents", "Jobs"), ("2021", "41", "1,900"), ("2022", "48", "2,250"),
                             ("2023", "57", "2,700")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    doc.add_paragraph("The director of Technopark Omega is Irina Volkova.")
    section = doc.sections[0]
    section.header.paragraphs[0].text = "Omega confidential header"
    section.footer.paragraphs[0].text = "Page footer of Omega"
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def make_zip_bomb(unpacked_mb: int = 8) -> bytes:
    """A "DOCX" whose document part unpacks to ``unpacked_mb`` MB of one byte repeated
    (deflate packs it ~1000 times)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("word/document.xml", b"<" + b"a" * (unpacked_mb << 20))
    return out.getvalue()


def make_broken_docx() -> bytes:
    """A real DOCX whose document part is cut off mid-XML."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(make_docx())) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            dst.writestr(item, data[: len(data) // 2] if item.filename == "word/document.xml" else data)
    return out.getvalue()


def make_zip_without_document() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("hello.txt", "not a word document")
    return out.getvalue()


MARKDOWN = """---
title: Omega visitor guide
date: 2024-04-01
lang: en
---

# Visiting Technopark Omega

Technopark **Omega** is open to visitors *on weekdays* from 9:00 to 18:00. See the [map](https://example.org/map).

![the entrance](entrance.png)

## How to get there

1. Take the metro to Omega station.
2. Walk 300 metres north to the main gate.

- Parking is free for visitors.
- Bicycles can be left at gate 2.

| Building | Opens |
|---|---|
| Lab block | 9:00 |
| Gallery | 11:00 |

<div class="note">raw html block that is left out</div>

```
gate code: not needed on weekdays
```
"""

RU_TEXT = ("Технопарк «Омега» открыл новый корпус в марте 2024 года.\n"
           "В корпусе разместились 12 компаний, которые занимаются фотоникой.\n")

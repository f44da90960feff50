"""Which HTML main-content extractor: measured on the hand-made news pages of
tests/data/import/ (the seeds' kinds of junk: navigation, cookie notices, most-popular and
related headline lists, comments, footers, scripts), EN and RU.

    python bench/html_extractors.py [--out bench/results/html-extractors.json]

For each extractor and page: the share of the article's sentences found in the text (each
must be found whole), the junk lines kept, and the milliseconds a page. readability-lxml
is optional (not a dependency): it is skipped when missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.documents import DATA  # noqa: E402
from tests.test_import import PAGES  # noqa: E402


def _trafilatura(**options: object) -> Callable[[bytes], str]:
    def run(html: bytes) -> str:
        import trafilatura

        return trafilatura.extract(html, include_comments=False, include_tables=True, **options) or ""

    return run


def _ours(html: bytes) -> str:
    from qa.extract import extract_html

    return extract_html(html).text


def _readability(html: bytes) -> str:
    import lxml.html
    from readability import Document

    doc = Document(html.decode("utf-8"))
    return doc.title() + "\n" + lxml.html.fromstring(doc.summary()).text_content()


def _justext(lang: str) -> Callable[[bytes], str]:
    def run(html: bytes) -> str:
        import justext

        stoplist = justext.get_stoplist("Russian" if lang == "ru" else "English")
        return "\n".join(p.text for p in justext.justext(html, stoplist) if not p.is_boilerplate)

    return run


def _whole_page(html: bytes) -> str:
    """What pasting the page gives: all its text (scripts and styles dropped)."""
    import lxml.html

    tree = lxml.html.fromstring(html)
    for bad in tree.xpath("//script|//style"):
        bad.drop_tree()
    return "\n".join(" ".join(t.split()) for t in tree.itertext() if t.strip())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "html-extractors.json")
    args = ap.parse_args()
    extractors: dict[str, Callable[[str], Callable[[bytes], str]]] = {
        "qa.extract (trafilatura, favor_precision, title first)": lambda _lang: _ours,
        "trafilatura default": lambda _lang: _trafilatura(),
        "trafilatura favor_recall": lambda _lang: _trafilatura(favor_recall=True),
        "jusText": _justext,
        "whole page text (lxml)": lambda _lang: _whole_page,
    }
    try:
        import readability  # noqa: F401

        extractors["readability-lxml"] = lambda _lang: _readability
    except ImportError:
        print("readability-lxml not installed: skipped", file=sys.stderr)
    rows = []
    for name, make in extractors.items():
        found = total = junk_kept = junk_total = 0
        ms = 0.0
        per_page = {}
        for page, (lang, article, junk) in PAGES.items():
            html = (DATA / page).read_bytes()
            extract = make(lang)
            extract(html)  # once untimed: imports and first-call caches are not the page's cost
            t0 = time.perf_counter()
            text = " ".join(extract(html).split())
            ms += (time.perf_counter() - t0) * 1000
            hit = sum(" ".join(s.split()) in text for s in article)
            kept = [j for j in junk if j in text]
            per_page[page] = {"sentences": f"{hit}/{len(article)}", "junk_kept": kept}
            found, total = found + hit, total + len(article)
            junk_kept, junk_total = junk_kept + len(kept), junk_total + len(junk)
        rows.append({"extractor": name, "sentences_found": f"{found}/{total}", "junk_kept": f"{junk_kept}/{junk_total}",
                     "ms_per_page": round(ms / len(PAGES), 1), "pages": per_page})
        print(f"{name:58} sentences {found:>3}/{total}  junk kept {junk_kept:>3}/{junk_total}  "
              f"{ms / len(PAGES):6.1f} ms/page")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

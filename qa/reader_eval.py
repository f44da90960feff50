"""The reader alone on the gold paragraph: XQuAD's published setting.

Each question is read against its own paragraph (windows of 384 word pieces, the best
span of any window, "no answer" not allowed: every XQuAD question has one), scored with
the SQuAD EM / F1 over its gold answers. ``python -m qa.reader_eval [WEIGHTS...]`` prints
one row per weights file (the training snapshots are compared this way).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qa.datasets import XQUAD_DEV, paragraph_half, read_squad
from qa.metrics import best_over_golds
from qa.reader import WEIGHTS, Reader


def gold_paragraph(reader: Reader, path: Path, limit: int | None = None, window: int = 384,
                   stride: int = 128, half: int | None = None) -> dict[str, Any]:
    """``half``: only the articles of this half (``qa.datasets.article_half``: the reader
    trained on XQuAD dev's other half is measured on it)."""
    squad = read_squad(path)
    paragraphs = {d.title: d.text for d in squad.docs}
    questions = [q for q in squad.questions if half is None or paragraph_half(q.paragraph) == half]
    questions = questions[:limit] if limit else questions
    em = f1 = 0.0
    records = []
    t0 = time.perf_counter()
    for q in questions:
        text = paragraphs[q.paragraph]
        windows = reader.windows(text, 0, q.question, window, stride)
        spans = [s[0] for s in reader.read(q.question, [text], windows) if s]
        pred = text[max(spans, key=lambda s: s.score).start:max(spans, key=lambda s: s.score).end] if spans else ""
        e, f = best_over_golds("em", pred, q.answers), best_over_golds("f1", pred, q.answers)
        em += e
        f1 += f
        records.append({"id": q.qid, "prediction": pred, "em": e, "f1": round(f, 4)})
    n = max(1, len(questions))
    return {"lang": squad.lang, "half": half, "questions": len(questions), "em": round(100 * em / n, 1),
            "f1": round(100 * f1 / n, 1), "seconds": round(time.perf_counter() - t0, 1), "records": records}


def reader_alone(reader: Reader, folder: Path, limit: int | None = None,
                 progress: Callable[[str], None] = lambda _m: None, half: int | None = None) -> list[dict[str, Any]]:
    """``gold_paragraph`` of every ``xquad.*.json`` of ``folder``, without the records (the
    section of ``qa eval --report``)."""
    out = []
    for f in sorted(folder.glob("xquad.*.json")):
        progress(f"reader alone on the gold paragraph: {f.name}")
        r = gold_paragraph(reader, f, limit, half=half)
        r.pop("records")
        out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m qa.reader_eval", description=__doc__.split("\n\n")[0])
    p.add_argument("weights", nargs="*", type=Path, default=[WEIGHTS])
    p.add_argument("--data", type=Path, action="append", help="SQuAD-format files (default: XQuAD dev EN and RU)")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--half", type=int, choices=(0, 1), help="only XQuAD dev's articles of this half")
    p.add_argument("--precision", choices=("int8", "bf16", "fp32"), default="bf16")
    args = p.parse_args(argv)
    data = args.data or [XQUAD_DEV / "xquad.en.json", XQUAD_DEV / "xquad.ru.json"]
    for w in args.weights:
        reader = Reader.load(w, args.precision)
        for d in data:
            r = gold_paragraph(reader, d, args.limit or None, half=args.half)
            r.pop("records")
            print(json.dumps({"weights": str(w), "data": d.name, **r}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

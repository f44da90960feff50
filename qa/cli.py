"""The ``qa`` command: a thin layer over the library. JSON with ``--json``, text
otherwise; library errors become one-line messages and exit codes here only."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from qa.config import Settings
from qa.index import IndexUnusable, MissingIndexError, StaleIndexError, build_on_disk, open_index
from qa.sources import SourceError

EXIT_USAGE = 2
EXIT_FAILURE = 1


def _err(msg: str) -> None:
    print(f"qa: {msg}", file=sys.stderr)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _load_encoder(settings: Settings) -> Any:
    from qa.embedding import load_encoder

    return load_encoder(settings.embedding_model, settings.embedding_threads)


def cmd_build(args: argparse.Namespace, settings: Settings) -> int:
    summary = build_on_disk(settings, progress=_progress)
    if args.json:
        print(json.dumps(summary.__dict__, ensure_ascii=False))
    else:
        print(f"built index: {summary.docs} docs, {summary.chunks} chunks, {summary.sentences} sentences "
              f"in {summary.seconds:.1f} s -> {settings.index_dir / 'current'}")
    return 0


def _ensure_index(settings: Settings, encoder: Any) -> Any:
    """Open the index; build it first when it is missing or no longer matches."""
    try:
        return open_index(settings)
    except (MissingIndexError, StaleIndexError) as e:
        _progress(f"{e} -> building it now")
        build_on_disk(settings, encoder=encoder, progress=_progress)
        return open_index(settings)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from qa.retrieval import Retriever

    query = args.query.strip()
    if not query:
        _err("the query is empty")
        return EXIT_USAGE
    encoder = _load_encoder(settings)
    index = _ensure_index(settings, encoder)
    retriever = Retriever.from_settings(index, encoder, settings)
    passages = retriever.search(query, args.k, args.mode)
    if args.json:
        results = [
            {"doc_id": p.chunk.doc_id, "chunk_id": p.chunk.chunk_id, "start": p.chunk.start, "end": p.chunk.end,
             "text": p.chunk.text, "score": round(p.score, 6), "lang": p.chunk.lang}
            for p in passages
        ]
        print(json.dumps({"query": query, "results": results}, ensure_ascii=False))
        return 0
    for n, p in enumerate(passages, 1):
        doc = index.docs[p.chunk.doc_id]
        print(f"[{n}] {p.score:.3f}  {doc.title}  ({p.chunk.doc_id} {p.chunk.start}-{p.chunk.end}, {p.chunk.lang})")
        snippet = " ".join(p.chunk.text.split())
        print(f"    {snippet[:300]}{'…' if len(snippet) > 300 else ''}\n")
    if not passages:
        print("no passages found")
    return 0


def _positive(value: str) -> int:
    n = int(value)
    if not 1 <= n <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return n


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="qa", description="Bilingual (EN + RU) extractive QA over the bundled sources.")
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build index/ from sources/")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    s = sub.add_parser("search", help="ranked passages for a query")
    s.add_argument("query")
    s.add_argument("--k", type=_positive, default=5, help="number of passages (1-100, default 5)")
    s.add_argument("--mode", choices=["fused", "bm25", "dense"], default="fused")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except ValueError as e:
        _err(f"invalid settings: {e}")
        return EXIT_USAGE
    commands = {"build": cmd_build, "search": cmd_search}
    try:
        return commands[args.command](args, settings)
    except (SourceError, IndexUnusable) as e:
        _err(str(e))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

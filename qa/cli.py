"""The ``qa`` command: a thin layer over the library. JSON with ``--json``, text
otherwise; library errors become one-line messages and exit codes here only."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from qa.config import PROJECT_ROOT, Settings
from qa.datasets import SETTINGS_KINDS
from qa.index import BuildInProgress, IndexUnusable, MissingIndexError, StaleIndexError, build_on_disk, open_index
from qa.sources import SourceError
from qa.types import ModelFileError

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


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    """Convert and add documents as sources, then rebuild the index (``--no-build``: leave
    it stale; the next `qa build`, `qa serve` or reindex picks them up)."""
    from qa.importing import add_files, expand

    if (args.id or args.title or args.url) and len(expand(args.paths)[0]) > 1:
        _err("--id, --title and --url name one document: give one file with them")
        return EXIT_USAGE
    done = add_files(args.paths, settings, doc_id=args.id, lang=args.lang, title=args.title, url=args.url,
                     date=args.date, replace=args.replace, build=not args.no_build, progress=_progress)
    if not done.added and not done.failed:
        _err("no .html/.htm, .pdf, .docx, .md or .txt files found there")
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(done.to_json(), ensure_ascii=False))
    else:
        for path, info in done.added:
            pages = f", {info.pages} pages" if info.pages else ""
            print(f"added {info.doc_id} ({info.type}{pages}, {info.chars} characters, {info.lang}) <- {path}")
        if done.index is not None:
            print(f"built index: {done.index.docs} docs, {done.index.chunks} chunks in {done.index.seconds:.1f} s")
        elif done.added:
            print("index not rebuilt (--no-build): run `qa build`, or POST /api/admin/reindex on a running server")
    for path, why in done.failed:
        _err(f"{path}: {why}")
    return EXIT_FAILURE if done.failed else 0


def _ensure_index(settings: Settings, encoder: Any) -> Any:
    """Open the index; build it first when it is missing or no longer matches."""
    try:
        return open_index(settings)
    except (MissingIndexError, StaleIndexError) as e:
        _progress(f"{e} -> building it now")
        build_on_disk(settings, encoder=encoder, progress=_progress)
        return open_index(settings)


def _checked(text: str, settings: Settings, what: str = "question") -> str:
    """The question or query as the server would take it, or ``QuestionError`` saying why not."""
    from qa.questions import QuestionError, validate_question

    try:
        # Bytes in argv that are not UTF-8 arrive as lone surrogates: not text to search for.
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise QuestionError(f"the {what} is not valid UTF-8 text") from None
    try:
        return validate_question(text, settings.max_question_chars)
    except QuestionError as e:
        raise QuestionError(str(e).replace("the question", f"the {what}")) from None


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from qa.retrieval import Retriever

    try:
        query = _checked(args.query, settings, "query")
    except ValueError as e:
        _err(str(e))
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


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from qa.pipeline import QAService

    try:
        question = _checked(args.question, settings)
        history = [_checked(h, settings) for h in args.history or []]
    except ValueError as e:
        _err(str(e))
        return EXIT_USAGE
    encoder = _load_encoder(settings)
    service = QAService(_ensure_index(settings, encoder), encoder, settings)
    answer = service.ask(question, history)
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False))
        return 0
    print(_render_answer(answer, color=sys.stdout.isatty()))
    return 0


def _page(c: Any) -> str:
    return f", p. {c.page}" if c.page else ""


def _render_answer(answer: Any, color: bool) -> str:
    """Human-readable: the answer with the short answer in bold (terminal) and the sources."""
    if answer.abstained:
        lines = [answer.message or "", ""]
        if answer.see_also:
            lines.append("See also:" if answer.lang == "en" else "Смотрите также:")
            lines += [f"  [{c.n}] {c.title} ({c.doc_id}{_page(c)}, {c.start}-{c.end})" for c in answer.see_also]
        return "\n".join(lines).rstrip()
    # each line's spacing evened out; a list answer keeps its items on their lines
    text = "\n".join(" ".join(line.split()) for line in answer.answer.splitlines() if line.strip())
    short = " ".join(answer.short_answer.split()) if answer.short_answer else None
    if short and color and short in text:
        text = text.replace(short, f"\033[1;4m{short}\033[0m", 1)
    lines = [text]
    if short:
        lines.append(("Short answer: " if answer.lang == "en" else "Краткий ответ: ") + short)
    lines.append(f"confidence {answer.confidence:.2f}")
    lines.append("")
    lines.append("Sources:" if answer.lang == "en" else "Источники:")
    for c in answer.citations:
        lang_note = f", {c.lang}" if c.lang != answer.lang else ""
        url = f" {c.url}" if c.url else ""
        date = f", {c.date}" if c.date else ""
        lines.append(f"  [{c.n}] {c.title} ({c.doc_id}{date}{_page(c)}, characters {c.start}-{c.end}{lang_note}){url}")
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from qa.datasets import DatasetError, item_half, load_dataset
    from qa.evaluation import check_thresholds, default_systems, evaluate
    from qa.sources import load_documents

    if args.report and not args.out:
        _err("--report needs --out DIR")
        return EXIT_USAGE
    if args.readme and not args.report:
        _err("--readme needs --report (its figures are the report's)")
        return EXIT_USAGE
    paths = args.dataset or [PROJECT_ROOT / "eval" / name
                             for name in ("technopolis.jsonl", "follow-ups.jsonl", "off-topic.jsonl", "xquad-dev")]
    thresholds = None
    if args.gate:
        try:
            thresholds = json.loads(args.gate.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            _err(f"cannot read thresholds {args.gate}: {e}")
            return EXIT_USAGE
    doc_langs = {d.doc_id: d.lang for d in load_documents(settings.sources_dir)}
    try:
        sets = [s for p in paths for s in load_dataset(p, doc_langs, tuple(args.setting or SETTINGS_KINDS))]
    except DatasetError as e:
        _err(str(e))
        return EXIT_USAGE
    if args.articles is not None:
        sets = [dataclasses.replace(s, items=tuple(it for it in s.items if item_half(it) in (None, args.articles)))
                for s in sets]
    encoder = _load_encoder(settings)
    out = args.out
    systems = default_systems(settings, args.compare or ())
    if args.system:
        systems = [s for s in systems if s.name in args.system]
        if not systems:
            _err(f"no system named {', '.join(args.system)}")
            return EXIT_USAGE
    try:
        results = evaluate(sets, settings, encoder, bundled=lambda: _ensure_index(settings, encoder), systems=systems,
                           limit=args.limit, records_dir=out / "records" if out else None, progress=_progress)
    except ModelFileError as e:
        _err(str(e))
        return EXIT_FAILURE
    report: dict[str, Any] = {"generated": time.strftime("%Y-%m-%d %H:%M"), "settings": _eval_settings(settings),
                              "datasets": results}
    if args.compare or args.articles is not None:
        extra = [*(f"--compare {c}" for c in args.compare or ()),
                 *([f"--articles {args.articles}"] if args.articles is not None else [])]
        report["command"] = f"qa eval {' '.join(extra)} --out {out} --report"
    if out:
        report["records"] = f"{out}/records/"
    xquad = [p for p in paths if p.is_dir() and sorted(p.glob("xquad.*.json"))]
    if args.report and xquad and any(s.answerer == "reader" for s in systems):
        from qa.reader import cached_reader
        from qa.reader_eval import reader_alone

        reader = cached_reader(settings.reader_weights, settings.reader_precision)
        report["reader_alone"] = reader_alone(reader, xquad[0], args.limit, _progress, half=args.articles)
    if out:
        from qa.report import write_report

        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        if args.report:
            write_report(report, out)
            _progress(f"wrote {out / 'report.md'} and {out / 'report.png'}")
        if args.readme:
            from qa.report import HEADLINE_MARKERS, headline, replace_block

            replace_block(args.readme, HEADLINE_MARKERS, headline(report))
            _progress(f"wrote the headline figures into {args.readme}")
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        from qa.report import summary_lines

        print("\n".join(summary_lines(report)))
    if thresholds is not None:
        failures, checked = check_thresholds(results, thresholds)
        if not checked:
            _err(f"no threshold in {args.gate} applies to the datasets run")
            return EXIT_FAILURE
        for f in failures:
            _err(f"below threshold: {f}")
        if failures:
            return EXIT_FAILURE
        _progress(f"all {checked} thresholds met ({args.gate})")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    import server

    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    url = f"http://{f'[{host}]' if ':' in host else host}:{args.port}/"
    if settings.answerer == "reader":
        from qa.reader import check_weights

        check_weights(settings.reader_weights)  # a clear error now, not a worker that cannot start
    if args.workers > 1:
        return _serve_workers(args, settings, url)
    service = server.load_service(settings, progress=_progress)
    app = server.create_app(settings, service=service)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:  # listening: only now is the address worth printing
                print(f"Open {url} (the demo page with the chat widget; API docs at {url}docs). Ctrl+C stops.",
                      flush=True)

    _Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info")).run()
    return 0


def _serve_workers(args: argparse.Namespace, settings: Settings, url: str) -> int:
    """``server:app`` with one process a worker, each with its own socket on the port
    (qa/workers.py). Python answers one question at a time a process (the GIL), so one
    process a core is what uses the cores: 172 against 56-74 answers/s at 10 clients on 2
    cores (bench/run.py). The index is checked (and built when missing or stale) here,
    once, before the workers open it."""
    from qa import workers
    from qa.embedding import threads_per_process

    _ensure_index(settings, encoder=None)  # build_on_disk loads an encoder if it must build
    # each worker answers as many questions at once as it has cores of its own
    os.environ.setdefault("QA_CPU_SLOTS", str(threads_per_process(args.workers)))
    print(f"Open {url} once the {args.workers} workers have started (the demo page with the chat widget; "
          f"API docs at {url}docs). Ctrl+C stops.", flush=True)
    return workers.run(args.host, args.port, args.workers, log_level="info")


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from qa.store import Store

    if not settings.db_path.exists():
        _err(f"no question log at {settings.db_path} yet: questions are logged by the server (`qa serve`)")
        return EXIT_FAILURE
    with Store(settings.db_path) as store:
        report = store.report(args.limit)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(_render_report(report, settings.db_path))
    return 0


def _one_line(text: str | None, width: int = 100) -> str:
    s = " ".join((text or "").split())
    return s if len(s) <= width else s[: width - 1] + "…"


def _render_report(report: dict[str, Any], path: Path) -> str:
    """What was asked, what went unanswered and the feedback, most frequent first."""
    t = report["totals"]
    lines = [f"{t['questions']} questions logged, {t['unanswered']} unanswered; feedback {t['up']} up, "
             f"{t['down']} down ({path})"]

    def section(title: str, rows: list[dict[str, Any]], render: Any) -> None:
        lines.extend(["", title])
        lines.extend([line for r in rows for line in render(r)] or ["  (none)"])

    def asked(r: dict[str, Any]) -> list[str]:
        out = [f"  {r['asked']:>5} {r['unanswered']:>5}  {_one_line(r['question'])}"]
        if r["last_answer"]:
            out.append(f"{'':14}-> {_one_line(r['last_answer'], 80)} [{r['last_doc_id']}]")
        return out

    def rated(r: dict[str, Any]) -> list[str]:
        return [f"  {r['up']:>5} {r['down']:>5}  {_one_line(r['question'])}",
                *(f"{'':14}\"{_one_line(c, 90)}\"" for c in r["comments"])]

    section("Most frequent questions (asked, unanswered):", report["frequent"], asked)
    section("Unanswered questions (asked, language):", report["unanswered"],
            lambda r: [f"  {r['asked']:>5} {r['lang']:>5}  {_one_line(r['question'])}"])
    section("Feedback (up, down), the most rated first:", report["feedback"], rated)
    return "\n".join(lines)


def _eval_settings(settings: Settings) -> dict[str, Any]:
    keys = ("embedding_model", "chunk_size", "chunk_overlap", "bm25_weight_same", "bm25_weight_cross",
            "sentence_weight", "same_lang_bonus", "answer_passages", "answerer", "abstain_threshold",
            "reader_passages", "reader_window_tokens", "reader_precision")
    return {**{k: getattr(settings, k) for k in keys}, "threshold": settings.threshold()}


def _positive(value: str) -> int:
    n = int(value)
    if not 1 <= n <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return n


def _at_least_one(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _port(value: str) -> int:
    n = int(value)
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError("must be between 1 and 65535")
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
    a = sub.add_parser("ask", help="answer a question from the sources, with citations")
    a.add_argument("question")
    a.add_argument("--history", action="append", metavar="EARLIER_QUESTION",
                   help="an earlier question of the conversation, oldest first (repeatable), for follow-ups")
    a.add_argument("--json", action="store_true", help="print one JSON object (the answer schema)")
    e = sub.add_parser("eval", help="run eval sets and benchmarks; print metrics")
    e.add_argument("--dataset", type=Path, action="append",
                   help="a .jsonl eval set, a SQuAD .json file or a folder of parallel ones (repeatable; "
                        "default: eval/technopolis.jsonl, eval/follow-ups.jsonl, eval/off-topic.jsonl and eval/xquad-dev)")
    e.add_argument("--setting", choices=SETTINGS_KINDS, action="append",
                   help="benchmark settings to run (repeatable; default all: same, cross, mixed)")
    e.add_argument("--compare", action="append", choices=["extractive", "reader"],
                   help="also run fused retrieval with this answer step (repeatable): "
                        "`--compare extractive` puts the earlier rule-based step beside the reader")
    e.add_argument("--system", action="append",
                   help="run only these systems (repeatable: fused, bm25, dense, first-sentence, fused-rules…)")
    e.add_argument("--articles", type=int, choices=(0, 1),
                   help="only the benchmark questions of this half of its articles (the reader trained on XQuAD "
                        "dev's half 0: its figures are those of half 1)")
    e.add_argument("--limit", type=_at_least_one, help="only the first N questions of each setting")
    e.add_argument("--out", type=Path, help="write metrics.json and per-question records/ here")
    e.add_argument("--report", action="store_true", help="also write report.md and report.png to --out")
    e.add_argument("--readme", type=Path,
                   help="with --report: put the headline table between the eval:start / eval:end markers of this file")
    e.add_argument("--gate", type=Path, help="thresholds JSON: exit 1 when a metric is below its minimum")
    e.add_argument("--json", action="store_true", help="print one JSON object of metrics")
    sv = sub.add_parser("serve", help="run the HTTP API and the chat widget (builds the index first if needed)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    sv.add_argument("--workers", type=_at_least_one, default=1,
                    help="server processes (default 1; one a core answers the most questions a second)")
    ad = sub.add_parser("add", help="add documents (HTML, PDF, DOCX, Markdown, text) as sources and rebuild the index")
    ad.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                    help="files, or folders of .html/.htm, .pdf, .docx, .md and .txt files")
    ad.add_argument("--id", help="the source's id (one file only; default: from the file name)")
    ad.add_argument("--lang", choices=["en", "ru"], help="the language (default: the document's own, else detected)")
    ad.add_argument("--title", help="the title (one file only; default: the document's own)")
    ad.add_argument("--url", help="where it was published (one file only; default: an HTML page's canonical URL)")
    ad.add_argument("--date", help="publication date YYYY-MM-DD (default: the document's own)")
    ad.add_argument("--replace", action="store_true", help="replace sources with the same id")
    ad.add_argument("--no-build", action="store_true", help="only write the sources; the index is rebuilt later")
    ad.add_argument("--json", action="store_true", help="print one JSON object")
    r = sub.add_parser("report", help="what the server was asked, what went unanswered, and the feedback")
    r.add_argument("--limit", type=_at_least_one, default=20, help="rows per section (default 20)")
    r.add_argument("--json", action="store_true", help="print one JSON object")
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
    commands = {"build": cmd_build, "search": cmd_search, "ask": cmd_ask, "eval": cmd_eval, "serve": cmd_serve,
                "report": cmd_report, "add": cmd_add}
    try:
        return commands[args.command](args, settings)
    except (SourceError, IndexUnusable, ModelFileError) as e:
        _err(str(e))
        return EXIT_FAILURE
    except BuildInProgress as e:
        _err(f"{e}; try again when it has finished")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`qa ask … | head`): stop quietly, as Unix tools do; stdout is
        # pointed at devnull so the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())

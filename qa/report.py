"""Render eval results: ``report.md`` with the tables, ``report.png`` with the chart,
and a short text summary for the terminal. Input is the object ``qa eval --json`` prints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

COMMAND = "make eval-report"  # = qa eval --out eval --report (both datasets, every setting)


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _runs(report: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [(ds, st, sy, m) for ds, settings in report["datasets"].items()
            for st, systems in settings.items() for sy, m in systems.items()]


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per run: the figures an evaluator looks at first."""
    lines = [f"{'dataset / setting / system':52} {'q':>5} {'R@1':>6} {'R@5':>6} {'cont@1':>7} {'EM':>6} {'F1':>6} "
             f"{'cite':>6} {'abstP':>6} {'abstR':>6} {'p50ms':>7}"]
    for ds, st, sy, m in _runs(report):
        ab = m["abstention"] or {}
        a, r = m["answers"], m["retrieval"]
        lines.append(f"{f'{ds} / {st} / {sy}':52} {m['questions']:>5} {_f(r['recall@1']):>6} {_f(r['recall@5']):>6} "
                     f"{_f(a['containment@1']):>7} {_f(a['em'], 1):>6} {_f(a['f1'], 1):>6} "
                     f"{_f(a['citation_accuracy']):>6} {_f(ab.get('precision')):>6} {_f(ab.get('recall')):>6} "
                     f"{m['latency_ms']['p50']:>7.1f}")
    return lines


def _main_table(systems: dict[str, Any]) -> list[str]:
    out = ["| system | questions | R@1 | R@5 | MRR | containment@1 | EM | F1 | citation acc. | "
           "abstention P / R / F1 | answer chars | latency p50 / p95 ms |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in systems.items():
        r, a, ab = m["retrieval"], m["answers"], m["abstention"]
        abst = "n/a" if ab is None else f"{_f(ab['precision'])} / {_f(ab['recall'])} / {_f(ab['f1'])}"
        out.append(f"| {name} | {m['questions']} | {_f(r['recall@1'])} | {_f(r['recall@5'])} | {_f(r['mrr'])} | "
                   f"{_f(a['containment@1'])} | {_f(a['em'], 1)} | {_f(a['f1'], 1)} | {_f(a['citation_accuracy'])} | "
                   f"{abst} | {_f(a.get('answer_chars'), 0)} | {m['latency_ms']['p50']:.1f} / {m['latency_ms']['p95']:.1f} |")
    return out


def _breakdown(title: str, groups: dict[str, Any]) -> list[str]:
    if not groups:
        return []
    out = [f"**{title}**", "", "| group | questions | R@1 | containment@1 | EM | F1 | citation acc. | abstained (unanswerable) |",
           "|---|---|---|---|---|---|---|---|"]
    for g, m in groups.items():
        out.append(f"| {g} | {m['questions']} | {_f(m['recall@1'])} | {_f(m['containment@1'])} | {_f(m['em'], 1)} | "
                   f"{_f(m['f1'], 1)} | {_f(m['citation_accuracy'])} | {_f(m['abstention_recall'])} |")
    return [*out, ""]


def _curve(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| threshold | coverage (answerable answered) | accuracy of those | abstention precision | abstention recall |",
           "|---|---|---|---|---|"]
    for row in rows[::2]:
        out.append(f"| {row['threshold']:.2f} | {_f(row['coverage'])} | {_f(row['accuracy'])} | "
                   f"{_f(row['abstention_precision'])} | {_f(row['abstention_recall'])} |")
    return out


def markdown(report: dict[str, Any], chart: str | None) -> str:
    s = report["settings"]
    lines = [
        "# QA evaluation report",
        "",
        f"Generated {report['generated']} by `{report.get('command', COMMAND)}`; per-question records are in "
        f"`{report.get('records', 'eval/records/')}` "
        "(one JSONL file per dataset, setting and system: question, gold, prediction, citations, verdicts).",
        "",
        "Settings: " + ", ".join(f"`{k}={v}`" for k, v in s.items()) + ".",
        "",
        "Metrics: R@k / MRR = a gold document (benchmarks: the gold paragraph) among the top documents; "
        "containment@1 = the shown answer contains a gold string (whole tokens; case, punctuation and ё/е "
        "ignored); EM / F1 = SQuAD scores "
        "(×100) of the short answer, or of the answer sentence when there is none, with Russian normalization "
        "(Unicode punctuation, ё = е); citation acc. = the first citation's document is a gold one and its quote "
        "contains a gold string. Answer scores count every answerable question (an abstention scores 0).",
        "",
    ]
    if s.get("answerer") == "first-sentence":
        lines += ["> **Baseline answers.** The answer step is not built yet: every system answers with the "
                  "*first sentence of its top passage*. Answer metrics here are that baseline's, not a "
                  "real answerer's; retrieval metrics are the system's own.", ""]
    if chart:
        lines += [f"![containment@1 by language pair and category]({chart})", ""]
    alone = report.get("reader_alone")
    if alone:
        lines += ["## The reader alone, gold paragraph given", "",
                  "XQuAD's published setting: each question read against its own paragraph only (the best span of "
                  "any window of 384 word pieces; no abstention). The reader was trained on English SQuAD questions "
                  "about *other* paragraphs of the same 24 articles (data/squad-train), then on the questions of "
                  "XQuAD dev's articles of half 0 in English, Russian and across (qa/models/README.md): only the "
                  "figures of half 1 (`--articles 1`) are of questions it has not seen.",
                  "", "| language | questions | EM | F1 |", "|---|---|---|---|"]
        lines += [f"| {r['lang']} | {r['questions']} | {r['em']:.1f} | {r['f1']:.1f} |" for r in alone]
        lines += [""]
    for ds, settings in report["datasets"].items():
        lines += [f"## {ds}", ""]
        for st, systems in settings.items():
            lines += [f"### {ds} · {st}", "", *_main_table(systems), ""]
            name = "fused" if "fused" in systems else next(iter(systems))
            main = systems[name]
            if len(main["by_pair"]) > 1 or len(main["by_category"]) > 0:
                lines += _breakdown(f"{name}: by question language", main["by_lang"])
                lines += _breakdown(f"{name}: by language pair (question → source)", main["by_pair"])
                lines += _breakdown(f"{name}: by category", main["by_category"])
            if main["abstention"] is not None:
                title = f"**{name}: coverage / accuracy over the confidence threshold**"
                lines += [title, "", *_curve(main["coverage_curve"]), ""]
    return "\n".join(lines) + "\n"


def chart(report: dict[str, Any], path: Path) -> bool:
    """Grouped bars of containment@1 per system: by language pair over every run, and by
    category where the eval set has categories. Returns False when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    pair_groups: dict[str, dict[str, float]] = {}
    cat_groups: dict[str, dict[str, float]] = {}
    for ds, st, sy, m in _runs(report):
        for pair, g in m["by_pair"].items():
            if g["containment@1"] is not None:
                label = f"{ds}\n{pair}" if st == "bundled sources" or st == pair or st == "mixed" else f"{ds} {st}\n{pair}"
                pair_groups.setdefault(label, {})[sy] = g["containment@1"]
        for cat, g in m["by_category"].items():
            if g["containment@1"] is not None:
                cat_groups.setdefault(f"{ds}\n{cat}", {})[sy] = g["containment@1"]
    panels = [(t, g) for t, g in (("containment@1 by language pair (question → source)", pair_groups),
                                  ("containment@1 by category", cat_groups)) if g]
    if not panels:
        return False
    systems = list(dict.fromkeys(sy for _, _, sy, _ in _runs(report)))
    fig, axes = plt.subplots(len(panels), 1, figsize=(13, 4.2 * len(panels)), squeeze=False)
    width = 0.8 / len(systems)
    for ax, (title, groups) in zip(axes[:, 0], panels, strict=True):
        labels = list(groups)
        for i, sy in enumerate(systems):
            xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(labels))]
            ax.bar(xs, [groups[lab].get(sy, 0.0) for lab in labels], width, label=sy)
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncols=len(systems))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    png = out / "report.png"
    has_chart = chart(report, png)
    (out / "report.md").write_text(markdown(report, png.name if has_chart else None), encoding="utf-8")


# ------------------------------------------------------------------ the README's headline

# The README's headline figures sit between these markers; `make eval-report` (qa eval
# --readme) rewrites what is between them, so the table and the report cannot disagree.
HEADLINE_MARKERS = ("<!-- eval:start -->", "<!-- eval:end -->")
PAIRS = (("en→en", "EN → EN"), ("ru→ru", "RU → RU"), ("en→ru", "EN → RU (across)"), ("ru→en", "RU → EN (across)"))


def _fused(report: dict[str, Any], dataset: str, setting: str) -> dict[str, Any] | None:
    """The default system's metrics of one run, or None when the run was not made."""
    systems = report["datasets"].get(dataset, {}).get(setting, {})
    return systems.get("fused")


def _answer_cell(m: dict[str, Any] | None) -> str:
    if not m or m.get("containment@1") is None:
        return "–"
    return f"{_f(m['containment@1'])} · {_f(m['em'], 1)} / {_f(m['f1'], 1)}"


def headline(report: dict[str, Any]) -> str:
    """The few figures a visitor looks at: the default system's answers by language pair on
    the project's questions and on XQuAD dev, abstention, follow-ups and latency. Only the
    runs the report holds are shown; the rest is in report.md."""
    project = _fused(report, "technopolis", "bundled sources")
    s = report["settings"]
    lines = [f"Generated {report['generated']} by `{report.get('command', COMMAND)}`: fused retrieval, "
             f"answer step `{s.get('answerer')}`, confidence threshold {s.get('threshold', s.get('abstain_threshold'))}. "
             "Cells: containment@1 · short-answer EM / F1.",
             "",
             "| question → source | project set (bundled sources) | XQuAD dev |",
             "|---|---|---|"]
    for key, label in PAIRS:
        mine = project["by_pair"].get(key) if project else None
        xquad = _fused(report, "xquad-dev", key)  # XQuAD's settings are named by language pair
        lines.append(f"| {label} | {_answer_cell(mine)} | {_answer_cell(xquad['answers'] if xquad else None)} |")
    follow = _fused(report, "follow-ups", "bundled sources")
    if follow:
        lines.append(f"| follow-ups, asked with the earlier question | {_answer_cell(follow['answers'])} | |")
    if project and project["abstention"]:
        ab = project["abstention"]
        lines.append(f"| on-topic questions the sources do not answer: declined (recall / precision) | "
                     f"{_f(ab['recall'])} / {_f(ab['precision'])} | |")
    off = _fused(report, "off-topic", "bundled sources")
    if off and off["abstention"]:
        lines.append(f"| off-topic questions (XQuAD's, asked of the sources): declined | "
                     f"{_f(off['abstention']['recall'])} | |")
    if project:
        xq = _fused(report, "xquad-dev", "en→en")
        xq_ms = f"{xq['latency_ms']['p50']:.1f} ms (EN → EN)" if xq else ""
        lines.append(f"| answer latency p50, library, question encoding included | "
                     f"{project['latency_ms']['p50']:.1f} ms | {xq_ms} |")
    return "\n".join(lines)


def replace_block(path: Path, markers: tuple[str, str], block: str) -> None:
    """Put ``block`` between the two markers of a file (the README's generated parts);
    refuses when the file does not have them exactly once."""
    start, end = markers
    text = path.read_text(encoding="utf-8")
    new, n = re.subn(re.escape(start) + ".*?" + re.escape(end), lambda _m: f"{start}\n{block}\n{end}", text,
                     flags=re.S)
    if n != 1:
        raise SystemExit(f"{path}: no {start} … {end} block")
    path.write_text(new, encoding="utf-8")

"""Adding a 20-page PDF to the bundled sources: how long `qa add` takes (conversion,
writing, reindexing the bundled corpus plus it), and whether answers cite the right page.

    python bench/import_pdf.py [--out bench/results/import.json]

Works on a copy of sources/ in a temporary folder. Two runs: "warm" adds the PDF to an
index already built (as on a running service: the bundled sources' vectors are in the
embedding cache), "cold" to a fresh index folder (everything embedded and parsed anew).
Each run is the real command (`python -m qa.cli add`) in a child process, so the figure
includes starting Python and loading the encoder. Then every page's question is asked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LABS = ["photonics", "quantum sensors", "microfluidics", "power electronics", "machine vision", "battery cells",
        "radio frequency", "medical imaging", "industrial robots", "thin films", "laser optics", "biochips",
        "composite materials", "acoustics", "satellite antennas", "hydrogen fuel cells", "semiconductor packaging",
        "precision machining", "thermal imaging", "neural interfaces"]
FILLER = [
    "The {lab} laboratory shares its measurement rooms with the residents of the neighbouring buildings, and its "
    "engineers advise companies that test prototypes before series production.",
    "Equipment for the {lab} work was bought under the city's programme for collective use centres; residents book "
    "it through the management company's online calendar and pay for the hours used.",
    "Students of the partner universities take internships in the {lab} laboratory every summer, and several of "
    "them have later joined resident companies as junior engineers.",
    "The management company reports the laboratory's load every quarter; requests from small companies are served "
    "first when the schedule is full.",
]


def report_pages() -> list[list[str]]:
    pages = []
    for k, lab in enumerate(LABS):
        year, staff = 2004 + k, 12 + 3 * k
        fact = (f"The {lab} laboratory of Technopark Sigma opened in {year} with {staff} researchers, "
                f"and it occupies the {k + 1}th floor of building {chr(65 + k % 4)}.")
        pages.append([fact, *(f.format(lab=lab) for f in FILLER)])
    return pages


def run_add(pdf: Path, sources: Path, index: Path) -> tuple[float, str]:
    env = {**os.environ, "QA_SOURCES_DIR": str(sources), "QA_INDEX_DIR": str(index), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "add", str(pdf), "--json"], env=env, capture_output=True,
                          text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"qa add failed: {proc.stderr[-2000:]}")
    return seconds, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "import.json")
    args = ap.parse_args()
    from qa.config import Settings
    from qa.embedding import load_encoder
    from qa.index import build_on_disk, open_index
    from qa.pipeline import QAService
    from tests.documents import make_pdf

    pages = report_pages()
    result: dict[str, object] = {"cores": os.cpu_count(), "load_average_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pdf = tmp / "sigma-laboratories.pdf"
        pdf.write_bytes(make_pdf(pages, title="Technopark Sigma laboratories",
                                 headings=[f"{k + 1}. The {lab} laboratory" for k, lab in enumerate(LABS)]))
        result["pdf"] = {"pages": len(pages), "bytes": pdf.stat().st_size}
        runs = {}
        for kind in ("warm", "cold"):
            sources = tmp / f"sources-{kind}"
            shutil.copytree(ROOT / "sources", sources, ignore=shutil.ignore_patterns("originals", "README.md"))
            index = tmp / f"index-{kind}"
            if kind == "warm":
                t0 = time.perf_counter()
                build_on_disk(Settings(sources_dir=sources, index_dir=index))
                result["bundled_build_seconds"] = round(time.perf_counter() - t0, 1)
            seconds, out = run_add(pdf, sources, index)
            runs[kind] = {"seconds": round(seconds, 1), "index_seconds": round(json.loads(out)["index"]["seconds"], 1),
                          "docs": json.loads(out)["index"]["docs"]}
            print(f"{kind}: qa add + reindex {seconds:.1f} s (index build {runs[kind]['index_seconds']} s)", flush=True)
        result["add"] = runs
        settings = Settings(sources_dir=tmp / "sources-warm", index_dir=tmp / "index-warm", abstain_threshold=0.0)
        encoder = load_encoder(settings.embedding_model, settings.embedding_threads)
        service = QAService(open_index(settings), encoder, settings)
        right, misses = 0, []
        for k, lab in enumerate(LABS):
            answer = service.ask(f"When did the {lab} laboratory of Technopark Sigma open?")
            cite = answer.citations[0] if answer.citations else None
            ok = cite is not None and cite.doc_id == "sigma-laboratories" and cite.page == k + 1
            right += ok
            if not ok:
                misses.append({"page": k + 1, "cited": None if cite is None else [cite.doc_id, cite.page],
                               "answer": answer.answer})
        result["right_page"] = {"right": right, "asked": len(LABS), "misses": misses}
        print(f"answers citing the right page: {right}/{len(LABS)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

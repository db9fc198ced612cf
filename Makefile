# Mercato's two set-up commands: `make up` and `make test`. Each works on a fresh machine
# with only Python 3.11+ and make: it creates .venv, installs uv into it when uv is absent,
# installs the locked dependencies, then runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo $(BIN)/uv)
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: up test test-fast lint typecheck imports pytest bench sync clean help

help:
	@echo "make up         run the whole platform (mercato up; honours MERCATO_DATA_DIR, MERCATO_PORT)"
	@echo "make test       every check and every test (lint, types, import contracts, pytest)"
	@echo "make test-fast  lint and unit tests only (seconds)"
	@echo "make bench      benchmarks that print ratios (not part of make test)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	@$(BIN)/python -m pip --version > /dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip > /dev/null
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

# Bytecode is compiled ahead (UV_COMPILE_BYTECODE, compileall): machines that set
# PYTHONDONTWRITEBYTECODE would otherwise recompile every import of every process start.
sync: | $(BIN)/python $(if $(filter $(BIN)/uv,$(UV)),$(BIN)/uv)
	@$(UV) sync --frozen --all-packages --inexact --quiet
	@$(MAKE) --no-print-directory $(VENV)/.bytecode
	@$(BIN)/python -m compileall -q -j 0 libs/chassis/src services/*/src cli/src

$(VENV)/.bytecode: uv.lock
	@$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	@touch $@

up: sync
	$(BIN)/mercato up $(if $(MERCATO_PORT),--port $(MERCATO_PORT))

lint: sync
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: sync
	$(BIN)/mypy

imports: sync
	$(BIN)/lint-imports

pytest: sync
	$(BIN)/pytest

test: lint typecheck imports pytest

test-fast: lint
	$(BIN)/pytest -m "not integration and not system and not slow" -q

# Benchmarks (`mercato bench`) print one JSON line each (ratios, not pass/fail), then the
# targets table. wrk and nginx-light come from Debian (RUNLEVEL=1: install, do not start it).
# `make bench BENCH="gateway checkout"` runs only those.
bench: sync
	@command -v wrk > /dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk > /dev/null; } || true
	@[ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] && RUNLEVEL=1 apt-get install -y -qq nginx-light > /dev/null; } || true
	$(BIN)/mercato bench $(BENCH)

clean:
	rm -rf $(VENV) .mercato .pytest_cache .mypy_cache .ruff_cache

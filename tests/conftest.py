"""Make the shared test helpers in tests/ (e.g. `gguf_tokenizers`) importable from every test folder
(pytest runs in importlib mode, which does not put test directories on sys.path), run the `llmos`
command in this process (`llmos_cli`), and build the integer kernels' extension once per session."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Decode steps run eagerly in the suite: compiling one costs seconds per model, so the tests that
# check the compiled step (tests/generation/test_decode_step.py, the parity suite's compiled cases)
# turn it on themselves, and nothing else compiles by surprise.
os.environ.setdefault("LLMOS_COMPILE", "0")


@pytest.fixture
def llmos_cli(monkeypatch, capsys):
    """`llmos_cli(*args)` -> (exit code, stdout, stderr): `llmos` in this process, through the same error
    handling as the installed command."""
    from llmos.cli.main import main

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["llmos", *map(str, args)])
        with pytest.raises(SystemExit) as exit_:
            main()
        out, err = capsys.readouterr()
        return exit_.value.code or 0, out, err

    return run


@pytest.fixture(scope="session", autouse=True)
def int_dot_built():
    """The integer kernels' extension is built (or found in its cache) once, before any test runs,
    never inside a test by surprise (`make setup` builds it; this covers a bare checkout)."""
    from llmos.kernels import build

    build.load()

"""`llmos --help`, every `llmos VERB --help` and a mistyped command answer without importing torch, the model
or the server: the verbs import those inside their command functions (a cold torch import took 13 s on a
busy machine before `llmos --help` could print a line)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "llmos.model", "llmos.serving.engine", "fastapi", "uvicorn", "transformers")

# Runs the real entry point once per command line, in one fresh interpreter, then reports what it imported.
PROBE = """
import json, sys
import typer
from llmos.cli.main import app, main

mistakes, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
root = typer.main.get_command(app)
verbs = root.list_commands(root.make_context("llmos", [], resilient_parsing=True))
command_lines = [["--help"], ["--version"]] + [[verb, "--help"] for verb in verbs] + mistakes
codes = {}
for argv in command_lines:
    sys.argv = ["llmos", *argv]
    try:
        main()
    except SystemExit as exc:
        codes[" ".join(argv)] = exc.code or 0
print(json.dumps({"codes": codes, "loaded": [m for m in heavy if m in sys.modules]}),
      file=sys.stderr)
"""

MISTAKES = [
    ["serve", "smollm2", "--port", "70000"],  # out of range: refused while parsing, before anything loads
    ["chat", "smollm2", "--threads", "0"],
    ["generate", "smollm2", "--max-tokns", "3"],  # an unknown flag
    ["pretrain", "--max-steps", "many"],  # a flag generated from the recipe's fields, given a bad value
    ["lst"],  # an unknown verb
]


def test_help_and_bad_arguments_answer_without_importing_torch_or_the_server():
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(MISTAKES), json.dumps(HEAVY)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stderr.strip().splitlines()[-1])
    codes = report["codes"]
    assert {line: code for line, code in codes.items() if line.endswith("--help") or line == "--version"} == {
        line: 0 for line in codes if line.endswith("--help") or line == "--version"}
    assert len(codes) > 15 and "serve --help" in codes and "data --help" in codes  # every verb was asked
    assert [codes[" ".join(argv)] for argv in MISTAKES] == [2] * len(MISTAKES)
    assert report["loaded"] == []

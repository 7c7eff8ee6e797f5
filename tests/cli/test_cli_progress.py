"""Long commands say how far they are: `llmos run WORKFLOW` prints a line per finished item with the time
left when stderr is a log rather than a terminal (it printed nothing for 150 s), and `make setup` says what
each quiet pip step installs and about how long it takes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def test_a_workflow_run_reports_each_item_and_the_time_left_on_stderr(llmos_cli, tmp_path):
    (tmp_path / "rows.jsonl").write_text("".join(f'{{"sum": "{i} + {i}"}}\n' for i in range(3)))
    workflow = tmp_path / "sums.yaml"
    workflow.write_text(yaml.safe_dump({"inputs": {"jsonl": "rows.jsonl"}, "steps": [
        {"name": "total", "kind": "tool", "tool": "calculate", "arguments": {"expression": "{{ item.sum }}"}}]}))
    code, out, err = llmos_cli("run", workflow)
    assert code == 0, err
    assert "ran 3 item(s)" in out
    lines = err.splitlines()
    assert lines[0] == "sums: 3 item(s)"
    assert [line.split(",")[0] for line in lines[1:]] == ["sums: 1/3 item(s)", "sums: 2/3 item(s)",
                                                         "sums: 3/3 item(s)"]
    assert re.search(r", about \d+ s left$", lines[1]) and "left" not in lines[3]
    code, _, err = llmos_cli("run", workflow)
    assert code == 0 and err.splitlines() == ["sums: 3 item(s), 3 done before"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_setup_announces_each_pip_step_and_its_duration():
    plan = subprocess.run(["make", "-n", "-B", "setup-test", "docs"], cwd=REPO, capture_output=True, text=True,
                          timeout=30, check=True).stdout.splitlines()
    steps = [i for i, line in enumerate(plan) if "pip install" in line]
    assert len(steps) >= 4  # torch, LLMOS, the embedded model, the test tools (and the docs tools)
    for i in steps:
        before = plan[i - 1]
        assert before.startswith("echo ") and re.search(r"\d+(-\d+)? (s|min)\b", before), before

"""Running workflows: constrained llm steps, tools, branches and maps per item; each item saved as it
finishes, a failing item stops the run naming it with the items before kept, and a re-run skips them."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
import yaml

from llmos.apps.workflow import load_workflow, run_workflow
from llmos.apps.workflow_inputs import WorkflowError

pytest.importorskip("llguidance")


def write(tmp_path: Path, workflow: dict, rows: list[dict] | None = None) -> Path:
    if rows is not None:
        with (tmp_path / "rows.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    return path


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_llm_steps_keep_to_their_schema_and_choices_and_every_file_gets_a_row(tiny_chat_model, tmp_path):
    model, tokenizer = tiny_chat_model
    (tmp_path / "mail").mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / "mail" / name).write_text(f"email {name}")
    schema = {"type": "object", "properties": {"who": {"type": "string", "maxLength": 6},
                                               "mood": {"enum": ["happy", "sad"]}},
              "required": ["who", "mood"], "additionalProperties": False}
    path = write(tmp_path, {
        "inputs": {"folder": "mail"},
        "steps": [{"name": "extract", "kind": "llm", "system": "Extract.", "prompt": "{{ item.text }}",
                   "schema": schema, "max_new_tokens": 40},
                  {"name": "label", "kind": "llm", "prompt": "{{ extract.who }} is", "choices": ["spam", "ham"]},
                  {"name": "helper", "kind": "agent", "task": "add {{ label }}", "tools": ["calculate"],
                   "max_steps": 1, "max_new_tokens": 24}],
        "output": {"path": "out.csv"}})
    summary = run_workflow(load_workflow(path), model, tokenizer)
    assert (summary.ran, summary.skipped, summary.rows) == (3, 0, 3)
    rows = read_csv(tmp_path / "out.csv")
    assert [row["item"] for row in rows] == ["a.txt", "b.txt", "c.txt"]
    assert list(rows[0]) == ["item", "extract.who", "extract.mood", "label", "helper"]  # a schema's fields: columns
    for row in rows:
        assert row["extract.mood"] in ("happy", "sad") and len(row["extract.who"]) <= 6
        assert row["label"] in ("spam", "ham")


CALC = {"inputs": {"csv": "rows.csv"},
        "steps": [{"name": "total", "kind": "tool", "tool": "calculate", "arguments": {"expression": "{{ item.sum }}"}}],
        "output": {"path": "out.jsonl", "fields": {"id": "item.id", "total": "total"}}}


def test_items_run_together_through_one_engine_and_each_gets_the_reply_it_gets_alone(tiny_chat_model, tmp_path,
                                                                                     monkeypatch):
    from llmos.generation.local import LocalGenerator
    from llmos.serving.engine import Engine
    from llmos.serving.runner import Runner

    model, tokenizer = tiny_chat_model
    rows = [{"q": f"item {i}: the cat sat"} for i in range(6)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"inputs": {"jsonl": "rows.jsonl"},
            "steps": [{"name": "reply", "kind": "llm", "system": "Be brief.", "prompt": "{{ item.q }}",
                       "max_new_tokens": 12},
                      {"name": "label", "kind": "llm", "prompt": "{{ reply }}", "choices": ["yes", "no"]}]}
    engines, batches, step, decode = [], [], Engine.step, Runner.decode

    def gated(self):  # the first step waits until every item has asked (a slow machine cannot split them)
        if not engines:
            engines.append(self)
            deadline = time.monotonic() + 30
            while len(self.scheduler.waiting) + len(self.scheduler.running) < len(rows) \
                    and time.monotonic() < deadline:
                time.sleep(0.005)
        step(self)

    monkeypatch.setattr(Engine, "step", gated)
    monkeypatch.setattr(Runner, "decode", lambda self, requests: (batches.append(len(requests)),
                                                                  decode(self, requests))[1])
    together = run_workflow(load_workflow(write(tmp_path, {**spec, "output": {"path": "together.jsonl"}})),
                            model, tokenizer)
    assert together.ran == 6 and len(engines) == 1 and max(batches) == len(rows)
    alone = run_workflow(load_workflow(write(tmp_path, {**spec, "output": {"path": "alone.jsonl"}})),
                         LocalGenerator(model, tokenizer))  # one item at a time, in this thread's model
    assert alone.ran == 6 and (tmp_path / "together.jsonl").read_text() == (tmp_path / "alone.jsonl").read_text()


def test_a_failing_item_stops_the_run_keeps_the_items_before_and_a_rerun_resumes_after_them(tmp_path):
    rows = [{"id": "a", "sum": "1 + 1"}, {"id": "b", "sum": "2 * 3"}, {"id": "c", "sum": "1 / 0"},
            {"id": "d", "sum": "4 - 1"}]
    path = write(tmp_path, CALC, rows)
    with pytest.raises(WorkflowError, match=r"item 'row 3' failed at step total: ToolError: division by zero; "
                                            r"the 2 item\(s\) finished before are kept in .*out.jsonl"):
        run_workflow(load_workflow(path))
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines == [{"id": "a", "total": 2}, {"id": "b", "total": 6}]
    state = json.loads((tmp_path / "out.jsonl.state.json").read_text())
    assert list(state["items"]) == ["row 1", "row 2"]

    rows[2]["sum"] = "10 / 4"  # fixed: row 3 runs, rows 1-2 are skipped, row 4 runs
    write(tmp_path, CALC, rows)
    seen = []
    summary = run_workflow(load_workflow(path), progress=lambda done, total: seen.append((done, total)))
    assert (summary.ran, summary.skipped, summary.rows) == (2, 2, 4)
    assert seen == [(2, 4), (3, 4), (4, 4)]
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["total"] for line in lines] == [2, 6, 2.5, 3]
    assert run_workflow(load_workflow(path)).ran == 0


def test_an_edited_item_runs_again_and_edited_steps_need_a_restart(tmp_path):
    rows = [{"id": "a", "sum": "1 + 1"}, {"id": "b", "sum": "2 * 3"}]
    path = write(tmp_path, CALC, rows)
    run_workflow(load_workflow(path), limit=1)
    assert load_workflow(path).items[0].key == "row 1"
    assert run_workflow(load_workflow(path)).ran == 1  # only the item the limit left out
    rows[0]["sum"] = "5 + 5"
    write(tmp_path, CALC, rows)
    assert run_workflow(load_workflow(path)).ran == 1
    changed = {**CALC, "steps": [{**CALC["steps"][0], "arguments": {"expression": "{{ item.sum }} + 1"}}]}
    write(tmp_path, changed)
    with pytest.raises(WorkflowError, match="another version of this workflow .* --restart"):
        run_workflow(load_workflow(path))
    assert run_workflow(load_workflow(path), restart=True).ran == 2
    assert [json.loads(line)["total"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == [11, 7]


def test_a_branch_runs_one_arm_and_a_map_runs_its_steps_per_element(tmp_path):
    rows = [{"id": "a", "parts": "1,2,3"}, {"id": "b", "parts": "40"}]
    path = write(tmp_path, {
        "inputs": {"csv": "rows.csv"},
        "steps": [{"name": "doubled", "kind": "map", "over": "item.parts.split(',')", "as": "part",
                   "steps": [{"name": "double", "kind": "tool", "tool": "calculate",
                              "arguments": {"expression": "{{ part }} * 2"}}]},
                  {"name": "big", "kind": "branch", "if": "doubled | sum > 10",
                   "then": [{"name": "note", "kind": "tool", "tool": "calculate",
                             "arguments": {"expression": "{{ doubled | sum }} - 10"}}],
                   "else": [{"name": "small", "kind": "tool", "tool": "calculate", "arguments": {"expression": "0"}}]}],
        "output": {"path": "out.csv", "fields": ["item.id", "doubled", "big", "note", "note.anything", "small"]}},
        rows)
    run_workflow(load_workflow(path))
    assert read_csv(tmp_path / "out.csv") == [
        {"item.id": "a", "doubled": "[2, 4, 6]", "big": "true", "note": "2", "note.anything": "", "small": ""},
        {"item.id": "b", "doubled": "[80]", "big": "true", "note": "70", "note.anything": "", "small": ""}]
    rows[0]["parts"] = "1"
    path = write(tmp_path, yaml.safe_load(path.read_text()), rows)
    run_workflow(load_workflow(path))
    assert read_csv(tmp_path / "out.csv")[0] == {"item.id": "a", "doubled": "[2]", "big": "false", "note": "",
                                                 "note.anything": "", "small": "0"}


def test_a_schema_reply_cut_by_max_new_tokens_fails_its_item_naming_the_limit(tiny_chat_model, tmp_path):
    model, tokenizer = tiny_chat_model
    path = write(tmp_path, {"steps": [{"name": "x", "kind": "llm", "prompt": "hi", "max_new_tokens": 2,
                                       "schema": {"type": "object", "properties": {"a": {"type": "string"}},
                                                  "required": ["a"]}}]})
    with pytest.raises(WorkflowError, match=r"item 'run' failed at step x: .*cut at max_new_tokens=2"):
        run_workflow(load_workflow(path), model, tokenizer)
    assert (tmp_path / "results.jsonl").read_text() == "" and not (tmp_path / "results.jsonl.state.json").exists()


def test_a_map_over_an_input_source_runs_its_steps_per_row(tmp_path):
    path = write(tmp_path, {"steps": [{"name": "totals", "kind": "map", "over": {"csv": "rows.csv"}, "as": "row",
                                       "steps": [{"name": "t", "kind": "tool", "tool": "calculate",
                                                  "arguments": {"expression": "{{ row.sum }}"}}]}]},
                 [{"sum": "1 + 2"}, {"sum": "3 * 3"}])
    run_workflow(load_workflow(path))
    assert json.loads((tmp_path / "results.jsonl").read_text()) == {"item": "run", "totals": [3, 9]}


def test_the_command_runs_a_workflow_on_a_checkpoint_beside_it_and_resumes(tiny_chat_model, tmp_path, llmos_cli,
                                                                            monkeypatch):
    model, tokenizer = tiny_chat_model
    model.save_pretrained(tmp_path / "tiny", tokenizer=tokenizer)
    monkeypatch.chdir(tmp_path.parent)  # the model's path is relative to the workflow file
    path = write(tmp_path, {"model": "tiny", "inputs": {"jsonl": "rows.jsonl"},
                            "steps": [{"name": "label", "kind": "llm", "prompt": "{{ item.q }}",
                                       "choices": ["yes", "no"]}]})
    (tmp_path / "rows.jsonl").write_text('{"q": "is it?"}\n{"q": "or not?"}\n')
    code, out, err = llmos_cli("run", path, "--output", tmp_path / "o.jsonl")
    assert code == 0, err
    assert "ran 2 item(s), skipped 0 done before" in out and "2 row(s)" in out
    labels = [json.loads(line)["label"] for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(labels) == 2 and set(labels) <= {"yes", "no"}
    code, out, err = llmos_cli("run", path, "--output", tmp_path / "o.jsonl")
    assert code == 0 and "ran 0 item(s), skipped 2 done before" in out

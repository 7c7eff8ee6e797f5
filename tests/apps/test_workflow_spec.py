"""Workflow files are checked whole before anything runs: each mistake is one error naming the value
and what is valid (on the command line: one line, exit 2), and --dry-run loads no model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmos.apps.workflow import describe, load_workflow
from llmos.apps.workflow_inputs import WorkflowError

pytest.importorskip("llguidance")

SCHEMA = {"type": "object", "properties": {"product": {"type": "string"}, "mood": {"enum": ["happy", "sad"]}},
          "required": ["product", "mood"], "additionalProperties": False}


def good() -> dict:
    return {"model": "smollm2", "inputs": {"folder": "mail", "pattern": "*.txt"},
            "steps": [{"name": "extract", "kind": "llm", "prompt": "{{ item.text }}", "schema": SCHEMA},
                      {"name": "route", "kind": "branch", "if": "extract.mood == 'sad'",
                       "then": [{"name": "reply", "kind": "llm", "prompt": "Answer about {{ extract.product }}"}]},
                      {"name": "total", "kind": "tool", "tool": "calculate", "arguments": {"expression": "1 + 1"}}],
            "output": {"path": "out.csv", "fields": {"file": "item.name", "product": "extract.product",
                                                     "reply": "reply"}}}


def write(tmp_path: Path, workflow: dict) -> Path:
    (tmp_path / "mail").mkdir(exist_ok=True)
    (tmp_path / "mail" / "a.txt").write_text("My kettle broke.\nAnna")
    (tmp_path / "mail" / "b.txt").write_text("Love the lamp.\nBo")
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    return path


def test_a_good_workflow_loads_with_its_items_and_paths_relative_to_its_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)
    workflow = load_workflow(write(tmp_path, good()))
    assert [item.key for item in workflow.items] == ["a.txt", "b.txt"]
    assert workflow.items[0].data["text"] == "My kettle broke.\nAnna"
    assert workflow.output.path == tmp_path / "out.csv" and workflow.needs_model()
    assert workflow.output_names() == ["extract", "reply", "route", "total"]


def mutate(workflow: dict, change) -> dict:
    change(workflow)
    return workflow


BAD = {
    "unknown kind": (lambda w: w["steps"][0].update(kind="lm"), r"unknown kind 'lm'; valid: llm, tool, agent"),
    "unknown output": (lambda w: w["steps"][1]["then"][0].update(prompt="{{ extrct.product }}"),
                       r"step 'reply' prompt refers to 'extrct', which is not an earlier step's output; "
                       r"known here: item, extract"),
    "later output": (lambda w: w["steps"][0].update(prompt="{{ total }}"), r"refers to 'total'"),
    "unknown field": (lambda w: w["output"]["fields"].update(product="extract.prodct"),
                      r"output.fields 'product' refers to extract.prodct, but extract has the fields mood, product"),
    "unknown item field": (lambda w: w["steps"][0].update(prompt="{{ item.body }}"),
                           r"refers to item.body, but item has the fields name, path, text"),
    "duplicate": (lambda w: w["steps"][2].update(name="extract"), r"\['extract'\] are used more than once"),
    "bad schema": (lambda w: w["steps"][0].update(schema={"type": "objekt"}),
                   r"step 'extract': schema: the grammar engine cannot compile json_schema"),
    "missing folder": (lambda w: w["inputs"].update(folder="post"), r"inputs: folder '.*post' does not exist"),
    "no files": (lambda w: w["inputs"].update(pattern="*.eml"), r"no file in '.*mail' matches pattern '\*.eml'"),
    "unknown key": (lambda w: w["steps"][0].update(temperature=0.5),
                    r"unknown key\(s\) \['temperature'\] for kind llm; valid: name, prompt, system, schema"),
    "wrong type": (lambda w: w["steps"][0].update(max_new_tokens="many"), r"'max_new_tokens' must be an integer; got 'many'"),
    "missing key": (lambda w: w["steps"][0].pop("prompt"), r"kind llm needs 'prompt'"),
    "unknown tool": (lambda w: w["steps"][2].update(tool="shell"), r"unknown tool 'shell'; valid: calculate"),
    "bad arguments": (lambda w: w["steps"][2].update(arguments={"expr": "1"}),
                      r"tool calculate takes arguments \['expression'\]"),
    "file tool without workspace": (lambda w: w["steps"][2].update(tool="read_file", arguments={"path": "a"}),
                                    r"give 'workspace: DIR'"),
    "bad expression": (lambda w: w["steps"][1].update(**{"if": "extract.mood =="}), r"expression .* does not parse"),
    "reserved name": (lambda w: w["steps"][2].update(name="item"), r"name 'item' must be an identifier"),
    "bad output": (lambda w: w["output"].update(path="out.xlsx"), r"write .jsonl or .csv"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_mistake_is_one_error_naming_it(tmp_path, case):
    change, message = BAD[case]
    with pytest.raises(WorkflowError, match=message):
        load_workflow(write(tmp_path, mutate(good(), change)))


def test_dry_run_prints_the_plan_and_loads_and_writes_nothing(tmp_path, monkeypatch, llmos_cli):
    from llmos import auto

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run must not load a model")

    monkeypatch.setattr(auto.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(auto.AutoTokenizer, "from_pretrained", refuse)
    path = write(tmp_path, good())
    code, out, err = llmos_cli("run", path, "--dry-run")
    assert code == 0, err
    assert "2 item(s) (a.txt, b.txt)" in out and "extract: llm, schema product, mood" in out
    assert "route: branch if extract.mood == 'sad'" in out and "would run 2 item(s); 0 already done" in out
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.state.json").exists()
    assert describe(load_workflow(path))[-1] == "would run 2 item(s); 0 already done"


def test_the_command_answers_bad_input_in_one_line_with_exit_2(tmp_path, llmos_cli):
    code, out, err = llmos_cli("run", tmp_path / "tasks.txt")
    assert code == 2 and err.count("\n") == 1
    assert "is not a workflow file; expected a .yaml or .yml file" in err
    code, out, err = llmos_cli("run", write(tmp_path, mutate(good(), BAD["unknown output"][0])), "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "'extrct', which is not an earlier step's output" in err


# ---- files from elsewhere: sizes and depths are bounded before anything is built from them ------------------

def test_a_workflow_file_past_the_size_limit_is_refused_before_it_is_parsed(tmp_path, llmos_cli):
    from llmos.apps.workflow_spec import MAX_WORKFLOW_BYTES

    path = write(tmp_path, good())
    padding = MAX_WORKFLOW_BYTES + 1 - path.stat().st_size
    path.write_text(path.read_text() + "#" + "x" * (padding - 2) + "\n")  # one byte past the limit
    assert path.stat().st_size == MAX_WORKFLOW_BYTES + 1
    code, out, err = llmos_cli("run", path, "--dry-run")
    assert code == 2 and err.count("\n") == 1, err[-2000:]
    assert f"has {MAX_WORKFLOW_BYTES + 1:,} bytes; a workflow file has at most {MAX_WORKFLOW_BYTES:,}" in err
    path.write_text(path.read_text()[:-2] + "\n")  # at the limit: it loads
    assert llmos_cli("run", path, "--dry-run")[0] == 0


@pytest.mark.parametrize(("text", "says"), [
    ("steps: " + "[" * 20_000 + "]" * 20_000 + "\n", "nest"),
    ("steps: " + "[" * 200 + "]" * 200 + "\n", "nests more than 64 levels"),
    ("description:\n" + "".join(f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 10) if i else 'x'}]\n" for i in range(8))
     + "steps: [{name: n, kind: tool, tool: calculate, arguments: {expression: *a7}}]\n",
     "more than 1,000,000 values"),  # a billion laughs: 10^7 values through YAML aliases
    ("steps: &loop [*loop]\n", "nests more than 64 levels"),  # an alias inside itself
])
def test_deep_or_self_expanding_yaml_is_one_line_and_exit_2(tmp_path, llmos_cli, text, says):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    code, out, err = llmos_cli("run", path, "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err[-2000:]
    assert says in err and str(path) in err


def test_a_workflow_file_that_is_not_utf8_is_one_line(tmp_path, llmos_cli):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("steps: [caf\xe9]\n".encode("latin-1"))
    code, out, err = llmos_cli("run", path, "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "not UTF-8 text" in err, err[-2000:]


@pytest.mark.parametrize("kind", ["folder", "csv", "jsonl"])
def test_inputs_past_their_size_or_item_limit_are_refused_in_a_dry_run(tmp_path, llmos_cli, monkeypatch, kind):
    from llmos.apps import workflow_inputs

    monkeypatch.setattr(workflow_inputs, "MAX_INPUT_BYTES", 1000)  # the real limits, 64 MiB and 100,000
    monkeypatch.setattr(workflow_inputs, "MAX_ITEMS", 3)           # items, take a big file to reach
    workflow = {"inputs": {"folder": "mail"}, "steps": [{"name": "n", "kind": "tool", "tool": "calculate",
                                                         "arguments": {"expression": "1 + 1"}}]}
    (tmp_path / "mail").mkdir()
    (tmp_path / "rows.csv").write_text("text\n" + "a\n" * 2)
    (tmp_path / "rows.jsonl").write_text('{"text": "a"}\n' * 2)
    (tmp_path / "mail" / "a.txt").write_text("a")
    if kind != "folder":
        workflow["inputs"] = {kind: f"rows.{kind}"}
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(workflow))
    assert llmos_cli("run", path, "--dry-run")[0] == 0  # within both limits

    big = {"folder": tmp_path / "mail" / "b.txt", "csv": tmp_path / "rows.csv", "jsonl": tmp_path / "rows.jsonl"}
    with big[kind].open("a") as f:  # one more item, of a thousand bytes
        f.write({"folder": "b" * 1001, "csv": "b" * 1001 + "\n", "jsonl": '{"text": "' + "b" * 1001 + '"}\n'}[kind])
    code, out, err = llmos_cli("run", path, "--dry-run")
    assert code == 2 and err.count("\n") == 1, err[-2000:]
    assert "inputs: " in err and "at most 1,000 bytes" in err

    big[kind].write_text("b" if kind == "folder" else ("text\n" + "b\n" * 4 if kind == "csv" else '{"a": 1}\n' * 4))
    for name in ("c.txt", "d.txt", "e.txt"):
        (tmp_path / "mail" / name).write_text("x")
    code, out, err = llmos_cli("run", path, "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "more than 3 items" in err, err[-2000:]

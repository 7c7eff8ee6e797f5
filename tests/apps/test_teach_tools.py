"""`llmos teach-tools`: from tool definitions (JSON or a Python module) and example requests to a LoRA
adapter in PEFT's format, with the before / after report, through the real CLI on a tiny model."""

from __future__ import annotations

import json

import pytest

from llmos.apps.teach_tools import load_tools
from llmos.apps.tool_schema import ToolError

pytest.importorskip("llguidance")

TOOLS = [{"type": "function", "function": {"name": name, "description": description, "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "description": "the city"}}, "required": ["city"]}}}
    for name, description in (("weather", "The weather in a city."), ("hotels", "Hotels in a city."),
                              ("museums", "Museums in a city."), ("events", "Events in a city today."))]
EXAMPLES = [{"request": "Is it sunny in Lima?", "tool": "weather", "arguments": {"city": "Lima"}},
            {"request": "Weather in Paris", "tool": "weather", "arguments": {"city": "Paris"}},
            {"request": "Will it rain in Bonn?", "tool": "weather", "arguments": {"city": "Bonn"}},
            {"request": "How cold is Oslo now?", "tool": "weather", "arguments": {"city": "Oslo"}},
            {"request": "Find a hotel in Oslo", "tool": "hotels", "arguments": {"city": "Oslo"}},
            {"request": "Any museums in Rome?", "tool": "museums", "arguments": {"city": "Rome"}},
            {"request": "What's on in Cairo tonight?", "tool": "events", "arguments": {"city": "Cairo"}},
            {"request": "Tell me a joke", "tool": None}]


def test_cli_teach_tools_trains_an_adapter_and_reports_before_and_after(tiny_chat_model, tmp_path, llmos_cli):
    from llmos import AutoModelForCausalLM

    model, tokenizer = tiny_chat_model
    model.save_pretrained(tmp_path / "tiny", tokenizer=tokenizer)
    (tmp_path / "tools.json").write_text(json.dumps(TOOLS))
    (tmp_path / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    code, out, err = llmos_cli("teach-tools", "--base-model", tmp_path / "tiny", "--tools", tmp_path / "tools.json",
                               "--examples", tmp_path / "examples.jsonl", "--no-catalogue", "--held-out-tools",
                               "0.25", "--conversations", 12, "--max-steps", 2, "--batch-size", 4, "--test-items",
                               1, "--context", 2048, "--out-dir", tmp_path / "run", "--no-progress")
    assert code == 0, err
    run = tmp_path / "run"
    assert (run / "last" / "adapter_config.json").is_file() and (run / "last" / "adapter_model.safetensors").is_file()
    records = [json.loads(line) for line in (run / "data" / "train.jsonl").read_text().splitlines()]
    assert len(records) == 12 and all("tools" in r or r["messages"][0]["role"] == "user" for r in records)
    assert "3 tools to train on, 1 held out" in out
    assert "held-out items, base -> tuned" in out and "new phrasings" in out and "new tools" in out
    assert "plain chat (no tools) unchanged" in out and f"{run / 'last'}" in out
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny", adapter=run / "last")
    assert any(".adapters." in name for name, _ in tuned.named_parameters())


def test_a_python_module_s_typed_functions_are_the_tools(tmp_path):
    module = tmp_path / "my_tools.py"
    module.write_text('def get_price(symbol: str) -> float:\n    """The price of a stock.\n\n    Args:\n'
                      '        symbol: the ticker\n    """\n    return 1.0\n\n\ndef _helper():\n    pass\n')
    functions = load_tools(str(module))
    assert [f["name"] for f in functions] == ["get_price"]
    assert functions[0]["parameters"]["properties"]["symbol"] == {"type": "string", "description": "the ticker"}


def test_bad_tools_and_examples_are_one_line_errors(tmp_path, llmos_cli):
    (tmp_path / "tools.json").write_text(json.dumps(TOOLS))
    (tmp_path / "examples.jsonl").write_text(json.dumps({"request": "x", "tool": "nope"}) + "\n")
    for args, message in (
            (["--tools", tmp_path / "missing.json"], "does not exist"),
            (["--tools", tmp_path / "tools.json", "--examples", tmp_path / "examples.jsonl"],
             "tool 'nope' is not one of the tools"),
            (["--data", "train.jsonl"], "teach-tools writes its own training data"),
            (["--no-catalogue"], "nothing to teach"),
            (["--served", "2"], "served=2.0 must be in [0, 1]")):
        code, _, err = llmos_cli("teach-tools", "--base-model", tmp_path / "absent", *args)
        assert code == 2 and err.count("\n") == 1 and message in err, err
    with pytest.raises(ToolError, match="needs a name"):
        (tmp_path / "bad.json").write_text(json.dumps([{"function": {"name": "has space"}}]))
        load_tools(str(tmp_path / "bad.json"))


def test_a_train_top_deeper_than_the_model_is_said_before_any_work(tiny_chat_model, tmp_path, llmos_cli):
    model, tokenizer = tiny_chat_model
    model.save_pretrained(tmp_path / "tiny", tokenizer=tokenizer)
    code, _, err = llmos_cli("teach-tools", "--base-model", tmp_path / "tiny", "--train-top", 3, "--out-dir",
                             tmp_path / "run")
    assert code == 2 and err == "error: train_top=3 does not fit a model of 2 blocks; use 1..2\n", err
    assert not (tmp_path / "run").exists()  # before any data is generated or model loaded

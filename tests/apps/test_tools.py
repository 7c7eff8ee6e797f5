"""Tools: schemas from type hints and docstrings; built-in tools that stay inside their workspace."""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from typing import Annotated, Literal

import pytest

from llmos.apps.agent import Agent
from llmos.apps.builtin_tools import ARITHMETIC, Workspace, calculate, current_time
from llmos.apps.tool_schema import Tool, ToolError, function_schema


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: int | None = None,
                tags: list[str] | None = None) -> str:
    """Current weather for a city.

    Longer text that is not part of the summary.

    Args:
        city: the city's name
        unit (str): the temperature unit
    """
    return city


def test_schema_comes_from_type_hints_and_docstring():
    spec = function_schema(get_weather)["function"]
    assert spec["name"] == "get_weather" and spec["description"] == "Current weather for a city."
    params = spec["parameters"]
    assert params["required"] == ["city"]
    assert params["properties"]["city"] == {"type": "string", "description": "the city's name"}
    assert params["properties"]["unit"] == {"enum": ["celsius", "fahrenheit"], "description": "the temperature unit",
                                            "default": "celsius"}
    assert params["properties"]["days"] == {"type": "integer", "default": None}
    assert params["properties"]["tags"] == {"type": "array", "items": {"type": "string"}, "default": None}


def test_annotated_dicts_add_schema_keywords_and_calculate_admits_arithmetic_only():
    def code(value: Annotated[str, {"pattern": "^[A-Z]{3}$"}, "not a dict: ignored"]) -> str:
        """A code.

        Args:
            value: three capitals
        """
        return value

    assert function_schema(code)["function"]["parameters"]["properties"]["value"] == {
        "type": "string", "pattern": "^[A-Z]{3}$", "description": "three capitals"}
    expression = function_schema(calculate)["function"]["parameters"]["properties"]["expression"]
    assert expression["pattern"] == ARITHMETIC and expression["maxLength"] == 1000
    for text in ("(3 + 4) * 2 ** 3", "480 * (1 - 25 / 100)", "7 // 2 % 3", "-1.5 + 2"):
        assert re.fullmatch(ARITHMETIC, text) and calculate(text) is not None
    for text in ("90 km / 3.5 hours", "52 weeks", "52", "-5", "", "sqrt(2)"):
        assert not re.fullmatch(ARITHMETIC, text)


def test_a_function_that_cannot_be_described_is_one_clear_error():
    def untyped(x):
        return x

    with pytest.raises(ToolError, match="parameter 'x' needs a type annotation"):
        function_schema(untyped)
    with pytest.raises(ToolError, match="not a lambda"):
        function_schema(lambda: 1)


def test_workspace_reads_lists_and_writes_inside_only(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("keep out")
    ws = Workspace(root)
    assert ws.write_file("notes/a.txt", "hello") == "wrote 5 characters to notes/a.txt"
    assert ws.read_file("notes/a.txt") == "hello"
    assert ws.list_files(".") == ["notes/"] and ws.list_files("notes") == ["notes/a.txt"]
    for bad in ("../secret.txt", str(tmp_path / "secret.txt"), "notes/../../secret.txt"):
        with pytest.raises(ToolError, match="outside the workspace"):
            ws.read_file(bad)
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(tmp_path, root / "out")
    with pytest.raises(ToolError, match="outside the workspace"):
        ws.read_file("link.txt")
    with pytest.raises(ToolError, match="outside the workspace"):
        ws.write_file("out/new.txt", "x")
    assert not (tmp_path / "new.txt").exists() and (tmp_path / "secret.txt").read_text() == "keep out"


def test_calculator_does_arithmetic_and_nothing_else():
    assert calculate("(3 + 4) * 2 ** 3") == 56
    assert calculate("-7 // 2 + 10 % 4") == -2
    assert calculate("1 / 4") == 0.25
    for bad, message in (("__import__('os').system('true')", "not arithmetic"), ("2 ** 100000", "too large"),
                         ("1 / 0", "division by zero"), ("x + 1", "not arithmetic"), ("1 +", "not a valid")):
        with pytest.raises(ToolError, match=message):
            calculate(bad)


def test_current_time_is_iso_in_the_zone_asked():
    stamp = current_time("Europe/Paris")
    assert datetime.fromisoformat(stamp).tzinfo is not None
    with pytest.raises(ToolError, match="unknown time zone 'Mars/Olympus'"):
        current_time("Mars/Olympus")


def test_a_tool_schema_compiles_for_constrained_decoding(tmp_path):
    pytest.importorskip("llguidance")
    from llmos.generation.constrained import grammar_for

    for fn in (get_weather, calculate, current_time, *Workspace(tmp_path).tools()):
        assert grammar_for(json_schema=function_schema(fn)["function"]["parameters"])


def test_a_tool_with_its_own_schema_passes_it_through_and_runs_its_function():
    parameters = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]}
    tool = Tool(name="double", description="Double n.", parameters=parameters, fn=lambda n: 2 * n)
    assert function_schema(tool) == {"type": "function", "function": {
        "name": "double", "description": "Double n.", "parameters": parameters}}
    assert tool(n=4) == 8


def test_write_file_never_writes_through_a_planted_temporary_file_symlink(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "v").write_text("ORIG")
    os.symlink(tmp_path / "out" / "v", tmp_path / "ws" / "notes.txt.tmp")  # the reproduction
    ws = Workspace(tmp_path / "ws")
    ws.write_file("notes.txt", "PWN")
    assert (tmp_path / "out" / "v").read_text() == "ORIG"
    assert not (tmp_path / "ws" / "notes.txt").is_symlink() and ws.read_file("notes.txt") == "PWN"
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["notes.txt", "notes.txt.tmp"]


def test_write_file_refuses_links_out_at_the_name_and_on_the_way_and_creates_nothing(tmp_path):
    root, outside = tmp_path / "ws", tmp_path / "out"
    root.mkdir()
    outside.mkdir()
    (outside / "v").write_text("ORIG")
    os.symlink(outside / "v", root / "notes.txt")
    os.symlink(outside, root / "linked")
    ws = Workspace(root)
    for path in ("notes.txt", "linked/new.txt", "linked/deeper/new.txt"):
        with pytest.raises(ToolError, match="outside the workspace"):
            ws.write_file(path, "PWN")
    assert (outside / "v").read_text() == "ORIG" and sorted(p.name for p in outside.iterdir()) == ["v"]
    assert sorted(p.name for p in root.iterdir()) == ["linked", "notes.txt"]


def test_a_folder_swapped_for_a_link_out_after_the_check_is_not_followed(tmp_path, monkeypatch):
    root, outside = tmp_path / "ws", tmp_path / "out"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("keep out")
    ws = Workspace(root)
    checked = ws._parts

    def check_then_swap(path):  # another process wins the race between the check and the open
        if (root / "sub").is_symlink():
            (root / "sub").unlink()
            (root / "sub").mkdir()
        parts = checked(path)
        (root / "sub").rmdir()
        (root / "sub").symlink_to(outside)
        return parts

    monkeypatch.setattr(ws, "_parts", check_then_swap)
    with pytest.raises(ToolError, match="'sub' became a symbolic link after it was checked"):
        ws.write_file("sub/x.txt", "PWN")
    with pytest.raises(ToolError, match="'sub' became a symbolic link after it was checked"):
        ws.read_file("sub/secret.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_write_file_refuses_a_folder_or_the_workspace_itself_and_creates_nothing(tmp_path):
    root = tmp_path / "ws"
    (root / "notes").mkdir(parents=True)
    ws = Workspace(root)
    for path in (".", "", "notes", "notes/", "notes/..", "new/"):
        with pytest.raises(ToolError, match="is a folder|is the workspace itself|names a folder"):
            ws.write_file(path, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]
    assert [p.name for p in root.iterdir()] == ["notes"] and not any((root / "notes").iterdir())


def test_symlinks_out_of_the_workspace_are_neither_read_nor_listed(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("keep out")
    (root / "real.txt").write_text("in")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(tmp_path, root / "out")
    os.symlink(root / "real.txt", root / "alias.txt")  # a link that stays inside is a file like any other
    ws = Workspace(root)
    for path in ("link.txt", "out/secret.txt"):
        with pytest.raises(ToolError, match="outside the workspace"):
            ws.read_file(path)
    with pytest.raises(ToolError, match="outside the workspace"):
        ws.list_files("out")
    assert ws.list_files() == ["alias.txt", "real.txt"] and ws.read_file("alias.txt") == "in"


def test_a_fifo_in_the_workspace_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ToolError, match="not a file"):
        Workspace(tmp_path).read_file("pipe")


@pytest.mark.parametrize("path, message", [("a\0b.txt", "NUL"), ("x" * 300, "longer than"),
                                            ("d/" + "x" * 300 + "/f.txt", "longer than")])
def test_a_file_name_the_system_refuses_is_a_tool_error_in_every_file_tool(path, message, tmp_path):
    ws = Workspace(tmp_path)
    for call in (lambda: ws.read_file(path), lambda: ws.list_files(path), lambda: ws.write_file(path, "x")):
        with pytest.raises(ToolError, match=message):
            call()
    assert list(tmp_path.iterdir()) == []


def test_calculator_bounds_every_intermediate_value_and_answers_at_once():
    assert calculate("9 ** 999 % 1000") == 9 ** 999 % 1000
    assert calculate("2 ** -2 + 10.0 ** 300 / 10.0 ** 300") == 1.25
    started = time.perf_counter()
    for bad, message in (("((9**999)**999)**999", "too large"), ("10.0**1000", "too large"),
                         ("9**999//1e-300", "too large"), ("1e308 * 10", "too large"),
                         ("9**999 * 9**999 * 9**999", "too large"), ("(-8)**(1/3)", "complex"),
                         ("-" * 990 + "1", "nested too deeply"), ("(" * 300 + "1" + ")" * 300, "not a valid"),
                         ("0 ** -1", "division by zero")):
        with pytest.raises(ToolError, match=message):
            calculate(bad)
    assert time.perf_counter() - started < 1.0


def test_the_agent_feeds_a_tool_refusal_back_to_the_model():
    from llmos.generation.service import Completion, Generator, StreamEvent

    class Scripted(Generator):  # calls calculate with an expression that used to run forever, then answers
        def __init__(self):
            self.replies = ['<tool_call>\n{"name": "calculate", "arguments": {"expression": "((9**999)**999)**999"}}'
                            '\n</tool_call>', "too large"]
            self.seen = []

        def stream(self, prompts, params=None):
            self.seen.append(prompts[0][-1])
            text = self.replies.pop(0)
            yield StreamEvent(0, text, Completion(text))

    chat = Scripted()
    result = Agent(chat, None, [calculate], max_steps=3, tool_timeout=5).run("compute")
    assert result.answer == "too large" and result.steps[0]["ok"] is False
    assert result.steps[0]["result"].startswith("error: ToolError: ") and "too large" in result.steps[0]["result"]
    assert chat.seen[1]["role"] == "tool" and chat.seen[1]["content"] == result.steps[0]["result"]

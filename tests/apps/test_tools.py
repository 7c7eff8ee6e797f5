"""Tools: schemas from type hints and docstrings; built-in tools that stay inside their workspace."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Literal

import pytest

from llmos.apps.builtin_tools import Workspace, calculate, current_time
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

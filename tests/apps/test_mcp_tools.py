"""MCP tools: a small stdio server the test starts; its tools listed with their input schemas, called,
their errors and timeouts raised as ToolError, the server stopped on close, and the Agent
decoding its arguments under the server's schema."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from llmos.apps.agent import Agent
from llmos.apps.mcp_tools import MCPClient, content_text, inline_refs, mcp_tools
from llmos.apps.tool_schema import ToolError

pytest.importorskip("mcp")

SERVER = Path(__file__).with_name("mcp_server.py")  # add, fail, shout, area, nap


@pytest.fixture(scope="module")
def client():
    with MCPClient(sys.executable, [str(SERVER)]) as client:
        yield client


def test_the_servers_tools_keep_their_input_schema_and_return_the_servers_text(client):
    tools = {tool.name: tool for tool in client.tools}
    assert set(tools) == {"add", "fail", "shout", "area", "nap"}
    assert tools["add"].description == "Add two integers."
    params = tools["add"].parameters
    assert params["required"] == ["a", "b"] and params["properties"]["a"]["type"] == "integer"
    assert params["additionalProperties"] is False  # added: the model sends only what the server describes
    assert tools["shout"].parameters["properties"]["word"]["enum"] == ["hi", "bye"]
    assert tools["add"](a=2, b=3) == "5" and tools["shout"](word="hi") == "HI"


def test_an_error_the_server_reports_is_a_tool_error_with_its_message(client):
    fail = next(tool for tool in client.tools if tool.name == "fail")
    with pytest.raises(ToolError, match="refused: no reason"):
        fail(reason="no reason")
    with pytest.raises(ToolError, match="Unknown tool"):
        client.call("missing", {})
    with pytest.raises(ToolError, match="valid integer"):  # the server checks its own schema
        client.call("add", {"a": "x", "b": 1})


def test_a_nested_model_parameter_is_written_out_so_the_action_grammar_compiles(client):
    area = next(tool for tool in client.tools if tool.name == "area")
    box = area.parameters["properties"]["box"]
    assert "$defs" not in area.parameters and box["required"] == ["width", "height"]
    assert area(box={"width": 2, "height": 3}) == "6"
    pytest.importorskip("llguidance")
    from llmos.generation.constrained import grammar_for

    schema = {"type": "object", "properties": {"tool": {"const": "area"}, "arguments": area.parameters}}
    assert grammar_for(json_schema=schema)


def test_refs_are_inlined_and_a_recursive_one_is_refused():
    schema = {"type": "object", "properties": {"p": {"$ref": "#/definitions/P", "description": "a point"}},
              "definitions": {"P": {"type": "object", "properties": {"x": {"type": "number"}}}}}
    assert inline_refs(schema) == {"type": "object", "properties": {"p": {
        "type": "object", "properties": {"x": {"type": "number"}}, "description": "a point"}}}
    tree = {"type": "object", "properties": {"root": {"$ref": "#/$defs/Node"}}, "$defs": {"Node": {
        "type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}}
    with pytest.raises(ToolError, match="recursive"):
        inline_refs(tree)
    with pytest.raises(ToolError, match="cannot resolve"):
        inline_refs({"$ref": "https://example.org/schema.json"})


def test_a_call_past_the_timeout_is_a_tool_error_and_the_connection_stays_usable(client):
    client.timeout = 0.3
    try:
        start = time.perf_counter()
        with pytest.raises(ToolError, match="'nap' did not answer within 0.3 s"):
            client.call("nap", {"seconds": 2})
        assert time.perf_counter() - start < 1.5
    finally:
        client.timeout = 30.0
    assert client.call("add", {"a": 1, "b": 1}) == "2"


def test_closing_stops_the_server_process_and_later_calls_say_so(tmp_path):
    with mcp_tools(sys.executable, [str(SERVER), "--pid", str(tmp_path / "pid")], prefix="t_") as tools:
        assert sorted(tool.name for tool in tools) == ["t_add", "t_area", "t_fail", "t_nap", "t_shout"]
        pid = int((tmp_path / "pid").read_text())
        os.kill(pid, 0)  # running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ToolError, match="is closed or has exited"):
        tools[0](a=1, b=2)


def test_a_server_that_cannot_start_is_one_clear_error():
    with pytest.raises(ToolError, match="cannot start MCP server 'no-such-mcp-server --flag'"):
        MCPClient("no-such-mcp-server", ["--flag"])
    with pytest.raises(ToolError, match="cannot start MCP server .*Connection closed"):
        MCPClient(sys.executable, ["-c", "pass"])  # exits at once without speaking MCP


def test_without_the_sdk_the_error_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mcp", None)  # `import mcp` now raises ImportError
    with pytest.raises(ToolError, match=r"pip install 'llmos\[mcp\]'"):
        MCPClient("anything")


def test_the_agent_writes_arguments_under_the_servers_schema_and_gets_its_answer(client, tiny_chat_model):
    pytest.importorskip("llguidance")
    jsonschema = pytest.importorskip("jsonschema")
    model, tokenizer = tiny_chat_model
    shout = next(tool for tool in client.tools if tool.name == "shout")  # an enum: a random model ends it
    agent = Agent(model, tokenizer, [shout], max_steps=1, max_new_tokens=64)
    assert agent.specs["shout"]["parameters"] == shout.parameters  # listed and constrained as the server gave it
    step = agent.run("say hi", require_tool_first=True).steps[0]
    assert step["action"]["tool"] == "shout"
    jsonschema.validate(step["action"]["arguments"], shout.parameters)
    assert step["ok"] is True and step["result"] == step["action"]["arguments"]["word"].upper()


def test_content_other_than_text_is_named_and_structured_content_is_json():
    blocks = [{"type": "text", "text": "a"}, {"type": "image", "data": "...", "mimeType": "image/png"},
              {"type": "resource", "resource": {"uri": "file:///x", "text": "inside"}},
              {"type": "resource_link", "uri": "file:///y", "name": "y"}]
    assert content_text(blocks) == "a\n[image: image/png]\ninside\n[resource_link: file:///y]"
    assert content_text([], {"result": 3}) == '{"result": 3}'

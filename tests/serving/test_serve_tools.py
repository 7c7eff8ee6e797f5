"""tools / tool_choice over the OpenAI API with the official client: calls validate against the
function's parameters, stream as deltas, and tool results go back for a final answer."""

from __future__ import annotations

import json

import openai
import pytest
import torch

from llmos.generation.tool_calls import ToolCallReader, default_format_messages, tool_grammar

jsonschema = pytest.importorskip("jsonschema")

ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two integers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99},
                                                    "b": {"type": "integer", "minimum": 0, "maximum": 99}},
                   "required": ["a", "b"], "additionalProperties": False}}}
SHOUT = {"type": "function", "function": {
    "name": "shout", "description": "Say a word loudly.",
    "parameters": {"type": "object", "properties": {"word": {"type": "string", "maxLength": 5}},
                   "required": ["word"], "additionalProperties": False}}}
TOOLS = [ADD, SHOUT]
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
MESSAGES = [{"role": "user", "content": "what is 2 plus 3?"}]


@pytest.fixture(scope="module")
def server(tokenizer, kit):
    """The tools' descriptions take ~800 tokens of the tiny tokenizer: a longer context than the default."""
    from llmos.serving.api import create_app

    model = kit.build_model(tokenizer.get_vocab_size(), max_seq_len=1536)
    uv, thread, url = kit.start_server(create_app(model, tokenizer, model_id="tiny", max_batch=8))
    yield type("Running", (), {"url": url})
    uv.should_exit = True
    thread.join(timeout=10)


def assert_valid_calls(calls, names=("add", "shout")):
    assert calls
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), PARAMS[call.function.name])


def test_required_and_named_tool_choice_return_valid_calls(client):
    for extra in ({"temperature": 0}, {"temperature": 1.2, "n": 3, "seed": 3}):
        reply = client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, max_tokens=150,
                                               tool_choice="required", **extra)
        for choice in reply.choices:
            assert choice.finish_reason == "tool_calls" and choice.message.content is None
            assert_valid_calls(choice.message.tool_calls)
    named = client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, max_tokens=80,
                                           temperature=0,
                                           tool_choice={"type": "function", "function": {"name": "shout"}})
    calls = named.choices[0].message.tool_calls
    assert len(calls) == 1
    assert_valid_calls(calls, names=("shout",))


def test_parallel_tool_calls_allows_several_calls_in_one_reply(client):
    one = client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, max_tokens=300,
                                         temperature=0, tool_choice="required")
    assert len(one.choices[0].message.tool_calls) == 1 and one.choices[0].finish_reason == "tool_calls"
    several = client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, max_tokens=300,
                                             temperature=0, tool_choice="required", parallel_tool_calls=True)
    calls = several.choices[0].message.tool_calls
    assert len(calls) > 1  # this random model goes on calling while the grammar allows it
    complete = calls if several.choices[0].finish_reason == "tool_calls" else calls[:-1]
    assert_valid_calls(complete)


def test_auto_replies_are_valid_calls_or_text(client):
    replies = client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, max_tokens=40,
                                             temperature=1.5, n=6, seed=1)
    for choice in replies.choices:
        if choice.message.tool_calls:
            assert choice.finish_reason in ("tool_calls", "length")
            if choice.finish_reason == "tool_calls":
                assert_valid_calls(choice.message.tool_calls)
        else:
            assert not choice.message.content.startswith("<")


def test_under_auto_the_first_token_chooses_between_text_and_a_call(tokenizer):
    from llmos.generation.constrained import GrammarProcessor, grammar_for

    grammar = grammar_for(grammar=tool_grammar([ADD["function"]], text_allowed=True, parallel=True))
    vocab = tokenizer.get_vocab_size()
    scores = GrammarProcessor(grammar, tokenizer, 1, 0, vocab, [2])(torch.zeros(1, 0, dtype=torch.long),
                                                                   torch.zeros(1, vocab))
    allowed = [tokenizer.decode([i]) for i in torch.nonzero(scores[0] == 0)[:, 0].tolist()]
    assert any(t.startswith("<") for t in allowed) and any(t[:1].isalpha() for t in allowed)
    assert "<tool_call>".startswith(next(t for t in allowed if t.startswith("<")))


def test_tool_choice_none_gives_text(client):
    reply = client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, max_tokens=8,
                                           temperature=0, tool_choice="none")
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "length"


def test_streamed_tool_calls_arrive_as_deltas_that_add_up(client):
    kwargs = {"model": "tiny", "messages": MESSAGES, "tools": TOOLS, "max_tokens": 150, "temperature": 0,
              "tool_choice": "required"}
    whole = client.chat.completions.create(**kwargs).choices[0].message.tool_calls
    calls: dict[int, dict] = {}
    finish, pieces = None, 0
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            pieces += 1
            entry = calls.setdefault(delta.index, {"name": None, "arguments": ""})
            if delta.function.name:
                entry["name"] = delta.function.name
            entry["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls" and pieces > len(calls)  # arguments arrive in several deltas
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        (c.function.name, json.loads(c.function.arguments)) for c in whole]


def test_round_trip_call_tool_result_final_answer(client):
    first = client.chat.completions.create(model="tiny", messages=MESSAGES, tools=TOOLS, max_tokens=80,
                                           temperature=0, tool_choice="required")
    call = first.choices[0].message.tool_calls[0]
    messages = [*MESSAGES, first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "5"}]
    final = client.chat.completions.create(model="tiny", messages=messages, tools=TOOLS, max_tokens=12,
                                           temperature=0, tool_choice="none")
    plain = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=1)
    assert final.choices[0].message.content and final.choices[0].message.tool_calls is None
    assert final.usage.prompt_tokens > plain.usage.prompt_tokens + 20  # the call and its result were read


def test_tools_with_response_format_answer_in_json_when_not_calling(client):
    schema = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"],
              "additionalProperties": False}
    reply = client.chat.completions.create(
        model="tiny", messages=MESSAGES, tools=TOOLS, max_tokens=150, temperature=1.5, n=8, seed=2,
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    finished = [c for c in reply.choices if c.finish_reason != "length"]
    assert finished
    for choice in finished:
        if choice.finish_reason == "stop":
            jsonschema.validate(json.loads(choice.message.content), schema)
        else:
            assert_valid_calls(choice.message.tool_calls)


@pytest.mark.parametrize("extra, param_hint", [
    ({"tool_choice": "required"}, "only allowed when tools"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "not in tools"),
    ({"tools": [ADD, ADD]}, "unique"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "string", "pattern": "(unclosed"}}}}}]}, "compile"),
])
def test_bad_tools_are_a_400_naming_the_problem(client, extra, param_hint):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=5, **extra)
    assert param_hint in info.value.body["message"]


def unservable(name: str, parameters: dict) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


@pytest.mark.parametrize("tool_choice", ["required", "auto", "none", {"type": "function", "function": {"name": "add"}}])
@pytest.mark.parametrize("parameters", [
    {"$ref": "#"},  # compiles, but no arguments match: once a 500 mid-decode (ff_tokens) or an empty 200
    {"type": "object", "properties": {"me": {"$ref": "#"}}, "required": ["me"]},  # arguments that never end
])
def test_a_tool_schema_the_engine_cannot_serve_is_a_400_naming_that_tool(client, tool_choice, parameters):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=20, tool_choice=tool_choice,
                                       tools=[ADD, unservable("loop", parameters)])
    assert info.value.body["param"] == "tools[1].function.parameters"
    assert info.value.body["code"] == "invalid_tools"
    assert "cannot serve" in info.value.body["message"]


def test_reader_streams_arguments_and_holds_back_the_closing_tag():
    text = ('<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>\n'
            '<tool_call>\n{"name": "shout", "arguments": {"word": "}"}}\n</tool_call>')
    reader, deltas = ToolCallReader(), []
    for i in range(0, len(text), 3):
        content, calls = reader.push(text[i:i + 3])
        assert content == ""
        deltas += calls
    deltas += reader.finish()
    assert [(c["name"], c["arguments"]) for c in reader.calls] == [
        ("add", '{"a": 1, "b": 2}'), ("shout", '{"word": "}"}')]
    assert "".join(d.arguments for d in deltas if d.index == 1) == '{"word": "}"}'
    cut = ToolCallReader()
    cut.push('<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_')
    cut.finish()
    assert cut.calls[0]["arguments"] == '{"a": 1}'  # the token limit cut only the closing tag
    text_reader = ToolCallReader()
    assert text_reader.push("Hello") == ("Hello", []) and text_reader.calls == []


def test_default_format_lists_tools_and_writes_history_back():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "5"},
                {"role": "tool", "tool_call_id": "call_2", "content": "6"}]
    out = default_format_messages(messages, [ADD["function"]])
    assert out[0]["content"].startswith("Be brief.\n\nYou can call functions") and '"name": "add"' in out[0]["content"]
    assert out[2] == {"role": "assistant",
                      "content": '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'}
    assert out[3] == {"role": "user", "content": "<tool_response>\n5\n</tool_response>\n"
                                                 "<tool_response>\n6\n</tool_response>"}
    assert "start: text | calls" in tool_grammar([ADD["function"]], True, True)


def test_a_template_that_reads_tools_renders_them_itself(tokenizer):
    from llmos.generation.tool_calls import native_messages
    from llmos.serving.text import ServedTokenizer

    template = ("{% if tools %}TOOLS:{% for t in tools %}{{ t.function.name }};{% endfor %}\n{% endif %}"
                "{% for m in messages %}{{ m.role }}:{{ m.content }}"
                "{% for c in m.tool_calls or [] %}CALL {{ c.function.name }} {{ c.function.arguments.a }}{% endfor %}\n"
                "{% endfor %}assistant:")
    served = ServedTokenizer(tokenizer, chat_template=template)
    assert served.renders_tools and not ServedTokenizer(tokenizer).renders_tools
    messages = native_messages([{"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "add", "arguments": '{"a": 7, "b": 1}'}}]}])
    assert served.render_chat(messages, tools=[ADD]) == "TOOLS:add;assistant:CALL add 7assistant:"  # trim_blocks eats the newlines

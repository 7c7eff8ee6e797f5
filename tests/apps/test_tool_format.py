"""One tool-call format (`llmos.generation.tool_calls`): the Agent prompts a model with the same text
as the server for the same conversation, and the blocks one side writes the other reads back."""

from __future__ import annotations

import json

import pytest

from llmos.apps.agent import Agent
from llmos.generation.local import LocalGenerator
from llmos.generation.service import GenerationParams
from llmos.generation.tool_calls import call_block, read_reply, reply_text
from llmos.serving.routes import chat_prompt
from llmos.serving.schemas import ChatCompletionRequest
from llmos.serving.text import ServedTokenizer

pytest.importorskip("llguidance")


def weather(city: str, unit: str = "C") -> str:
    """The current weather in a city.

    Args:
        city: the city name
        unit: C or F
    """
    return f"18 {unit} in {city}"


CONVERSATION = [
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "weather", "arguments": '{"city": "Oslo"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18 C in Oslo"},
]


def agent_prompt(model, tokenizer, messages, tool_choice):
    """The token ids the Agent's model is prompted with."""
    agent = Agent(model, tokenizer, [weather])
    functions = list(agent.specs.values())
    return agent.generator.prompt_ids(messages, GenerationParams(tools=tuple(functions), tool_choice=tool_choice)), \
        functions


@pytest.mark.parametrize("tool_choice", ["auto", "required", "none"])
def test_the_agent_prompts_the_model_with_the_text_the_server_renders(tiny_chat_model, tool_choice):
    model, tokenizer = tiny_chat_model
    ids, functions = agent_prompt(model, tokenizer, CONVERSATION, tool_choice)
    body = ChatCompletionRequest(model="tiny", messages=CONVERSATION, tool_choice=tool_choice,
                                 tools=[{"type": "function", "function": f} for f in functions])
    state = type("State", (), {"tokenizer": ServedTokenizer(tokenizer)})
    assert ids == chat_prompt(state, body)
    text = tokenizer.decode(ids)
    assert ("The current weather in a city." in text) == (tool_choice != "none")  # "none" lists no tools
    assert '<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in text
    assert "<tool_response>\n18 C in Oslo\n</tool_response>" in text


def test_a_template_that_reads_tools_gets_them_from_the_agent_as_from_the_server(tiny_chat_model):
    model, tokenizer = tiny_chat_model
    own = tokenizer.chat_template
    tokenizer.chat_template = ("{% for t in tools or [] %}TOOL {{ t.function.name }}\n{% endfor %}"
                               "{% for m in messages %}{{ m.role }}: {{ m.content }}"
                               "{% for c in m.tool_calls or [] %}CALL {{ c.function.arguments.city }}{% endfor %}\n"
                               "{% endfor %}assistant:")
    try:
        ids, functions = agent_prompt(model, tokenizer, CONVERSATION, "auto")
        body = ChatCompletionRequest(model="tiny", messages=CONVERSATION,
                                     tools=[{"type": "function", "function": f} for f in functions])
        assert ids == chat_prompt(type("State", (), {"tokenizer": ServedTokenizer(tokenizer)}), body)
        assert tokenizer.decode(ids) == ("TOOL weather\nuser: Weather in Oslo?assistant: CALL Oslotool: 18 C in Oslo"
                                         "assistant:")  # trim_blocks eats the newline after a block tag
    finally:
        tokenizer.chat_template = own


def test_a_call_block_reads_back_as_the_same_call_and_text_stays_text():
    call = {"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Lima"}'}}
    text = call_block(call)
    assert text == '<tool_call>\n{"name": "weather", "arguments": {"city": "Lima"}}\n</tool_call>'
    content, calls = read_reply(text)
    assert content is None and [c["function"]["name"] for c in calls] == ["weather"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Lima"}
    assert reply_text({"role": "assistant", "content": None, "tool_calls": calls}) == text
    assert read_reply("It is sunny.") == ("It is sunny.", [])
    assert reply_text({"role": "assistant", "content": "It is sunny."}) == "It is sunny."


def test_the_local_model_reports_a_reply_cut_by_the_token_limit(tiny_chat_model):
    model, tokenizer = tiny_chat_model
    params = GenerationParams(max_new_tokens=3, tools=(Agent(model, tokenizer, [weather]).specs["weather"],),
                              tool_choice="required")
    [completion] = LocalGenerator(model, tokenizer).generate([CONVERSATION[:1]], params)
    assert completion.finish_reason == "length" and completion.text.startswith("<tool")

"""Agent: every step is a valid action (grammar-constrained), tools run with timeouts, errors go
back to the model, steps are traced, max_steps bounds the loop."""

from __future__ import annotations

import json
import time
from typing import Literal

import pytest

from llmos.apps.agent import Agent

pytest.importorskip("llguidance")

PING_A = '<tool_call>\n{"name": "ping", "arguments": {"host": "a"}}\n</tool_call>'


def test_a_required_first_call_runs_the_tool_its_error_is_kept_and_the_step_traced(tiny_chat_model, tmp_path):
    model, tokenizer = tiny_chat_model
    calls = []

    def divide(a: Literal[1, 2], b: Literal[0]) -> float:  # enums: a random model cannot run on in digits
        """Divide a by b."""
        calls.append((a, b))
        raise ZeroDivisionError("b is zero")

    agent = Agent(model, tokenizer, [divide], max_steps=1, trace=tmp_path / "trace.jsonl", max_new_tokens=64)
    result = agent.run("divide 1 by 0", require_tool_first=True)
    first = result.steps[0]
    assert first["action"]["tool"] == "divide" and set(first["action"]["arguments"]) == {"a", "b"}
    assert calls[0] == (first["action"]["arguments"]["a"], first["action"]["arguments"]["b"])
    assert first["ok"] is False and first["result"] == "error: ZeroDivisionError: b is zero"
    assert len(result.steps) == 1 and result.stopped == "max_steps" and result.answer is None
    lines = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [s["step"] for s in result.steps]


def test_a_slow_tool_times_out_and_the_loop_goes_on(tiny_chat_model):
    model, tokenizer = tiny_chat_model

    def wait(seconds: Literal[2]) -> str:
        """Sleep."""
        time.sleep(2)
        return "done"

    agent = Agent(model, tokenizer, [wait], max_steps=1, tool_timeout=0.2, max_new_tokens=64)
    start = time.perf_counter()
    result = agent.run("wait", require_tool_first=True)
    assert result.steps[0]["result"] == "error: wait did not finish within 0.2 s"
    assert result.stopped == "max_steps" and time.perf_counter() - start < 2


def test_a_reply_cut_by_the_token_limit_is_told_to_the_model_not_raised(tiny_chat_model):
    model, tokenizer = tiny_chat_model

    def add(a: Literal[1], b: Literal[2]) -> int:
        """Add."""
        return a + b

    result = Agent(model, tokenizer, [add], max_steps=2, max_new_tokens=3).run("add", require_tool_first=True)
    assert result.stopped == "max_steps" and len(result.steps) == 2
    assert all("cut at max_new_tokens=3" in step["action"]["error"] for step in result.steps)


def test_cli_agent_runs_built_in_tools_and_refuses_unknown_ones_in_one_line(tiny_chat_model, tmp_path):
    import subprocess
    import sys

    model, tokenizer = tiny_chat_model
    model.save_pretrained(tmp_path / "tiny", tokenizer=tokenizer)
    (tmp_path / "ws").mkdir()
    base = [sys.executable, "-m", "llmos.cli.main", "agent", str(tmp_path / "tiny"), "what time is it?"]
    run = subprocess.run([*base, "--tools", "current_time", "--require-tool", "--max-steps", "1",
                          "--trace", str(tmp_path / "t.jsonl")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("[1] current_time(") and "(no answer after 1 steps)" in run.stdout
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 1
    bad = subprocess.run([*base, "--tools", "shell"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown tool(s) ['shell']" in bad.stderr


def test_a_repeated_call_is_not_run_again_and_the_next_step_must_answer():
    runs = []

    def ping(host: str) -> str:
        """Ping a host."""
        runs.append(host)
        return "pong"

    from llmos.generation.service import Completion, Generator, StreamEvent

    class Scripted(Generator):  # a chat model that repeats its call, as small models do
        def __init__(self):
            self.replies = [PING_A] * 2 + ["up"]
            self.choices = []

        def stream(self, prompts, params=None):
            self.choices.append(params.tool_choice)
            text = self.replies.pop(0)
            yield StreamEvent(0, text, Completion(text))

    chat = Scripted()
    result = Agent(chat, None, [ping], max_steps=6).run("is a up?")
    assert runs == ["a"] and result.answer == "up"
    assert result.steps[1]["repeated"] is True and result.steps[1]["result"] == "pong"
    assert chat.choices == ["auto", "auto", "none"]  # step 3: text only


def test_each_step_goes_to_on_step_as_it_ends_and_the_cli_prints_calls_results_and_the_answer():
    from llmos.cli.agent import step_line

    def ping(host: str) -> str:
        """Ping a host."""
        return "pong"

    from llmos.generation.service import Completion, Generator, StreamEvent

    class Scripted(Generator):
        replies = [PING_A, PING_A, "up"]

        def stream(self, prompts, params=None):
            text = self.replies.pop(0)
            yield StreamEvent(0, text, Completion(text))

    seen = []
    Agent(Scripted(), None, [ping]).run("is a up?", on_step=seen.append)
    assert [step_line(step) for step in seen] == ["[1] ping({'host': 'a'}) -> pong",
                                                  "[2] ping({'host': 'a'}) -> pong (a repeat: its earlier result)",
                                                  "[3] answer: up"]

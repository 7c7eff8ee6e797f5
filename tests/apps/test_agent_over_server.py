"""The Agent driving a model behind `llmos serve` (RemoteGenerator): the same greedy steps as the
same model in-process, and a server that cannot be reached is one clear error."""

from __future__ import annotations

from typing import Literal

import pytest
from live_server import free_port, start_server

from llmos.apps.agent import Agent
from llmos.serving.api import create_app
from llmos.serving.remote import RemoteError, RemoteGenerator

pytest.importorskip("llguidance")


def pick(colour: Literal["red", "blue"], count: Literal[1, 2, 3]) -> str:
    """Pick some balls of a colour."""
    return f"picked {count} {colour}"


def test_an_agent_over_the_server_takes_the_same_steps_as_in_process(tiny_chat_model):
    model, tokenizer = tiny_chat_model
    local = Agent(model, tokenizer, [pick], max_steps=3, max_new_tokens=48).run("pick two red", True)
    uv, thread, url = start_server(create_app(model, tokenizer, model_id="tiny"))
    try:
        remote_model = RemoteGenerator(url + "/v1")
        assert remote_model.model == "tiny"
        remote = Agent(remote_model, None, [pick], max_steps=3, max_new_tokens=48).run("pick two red", True)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
    assert remote.steps[0]["action"]["tool"] == "pick" and remote.steps[0]["result"].startswith("picked")
    assert [s["action"] for s in remote.steps] == [s["action"] for s in local.steps]
    assert remote.answer == local.answer


def test_an_unreachable_server_is_one_clear_error(llmos_cli):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(RemoteError, match="cannot reach http://127.0.0.1:"):
        RemoteGenerator(url, timeout=5)
    code, _, err = llmos_cli("agent", "-", "task", "--server", url)
    assert code == 2 and err.count("\n") == 1 and "cannot reach" in err


def test_cli_agent_over_the_server(tiny_chat_model, llmos_cli):
    model, tokenizer = tiny_chat_model
    uv, thread, url = start_server(create_app(model, tokenizer, model_id="tiny"))
    try:
        code, out, err = llmos_cli("agent", "tiny", "what time is it in UTC?", "--server", url + "/v1",
                                   "--tools", "current_time", "--require-tool", "--max-steps", "1")
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
    assert code == 0, err
    assert out.startswith("[1] current_time(")

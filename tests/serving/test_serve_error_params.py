"""A refusal from the engine reaches the client as a 400 whose `param` comes from the error's type and
attribute (`LLMOSError.param`), not from the words of its message."""

from __future__ import annotations

import openai
import pytest
from live_server import start_server

from llmos.errors import LLMOSError
from llmos.serving.api import create_app
from llmos.serving.engine import Engine
from llmos.serving.sampling import SamplingParams

from .conftest import build_model

CONTENT_ONLY = "{% for m in messages %}{{ m['content'] }}{% endfor %}"  # an empty message renders nothing


def test_the_engine_names_the_prompt_as_the_param_of_an_empty_prompt(tokenizer):
    engine = Engine(build_model(tokenizer.get_vocab_size()), max_batch=2)
    with pytest.raises(LLMOSError, match="empty after tokenization") as info:
        engine.submit([], SamplingParams(max_tokens=4, temperature=0), lambda event: None)
    assert info.value.param == "prompt"


def test_a_chat_that_renders_to_no_tokens_is_a_400_naming_the_prompt(tokenizer):
    app = create_app(build_model(tokenizer.get_vocab_size()), tokenizer, model_id="tiny", max_batch=2,
                     chat_template=CONTENT_ONLY)
    uv, thread, url = start_server(app)
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": ""}], max_tokens=2)
        assert info.value.body["param"] == "prompt" and "empty after tokenization" in info.value.message
        ok = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hello"}],
                                            max_tokens=2, temperature=0)
        assert ok.choices[0].finish_reason == "length"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)

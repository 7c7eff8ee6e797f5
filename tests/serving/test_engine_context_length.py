"""A prompt that does not fit the context window fails with the model's own ContextLengthError, the
one error type for that failure whether generation, the model or the serving engine finds it."""

from __future__ import annotations

import pytest

from llmos.model import ContextLengthError
from llmos.serving.engine import Engine
from llmos.serving.sampling import SamplingParams

from .conftest import build_model


def test_the_engine_refuses_a_prompt_as_long_as_the_context_with_context_length_error():
    model = build_model(400)
    engine = Engine(model, max_batch=2)
    too_long = list(range(engine.max_len))
    with pytest.raises(ContextLengthError, match=f"context window is {engine.max_len} tokens"):
        engine.submit(too_long, SamplingParams(max_tokens=4, temperature=0), lambda event: None)

"""Engine scheduling: new prompts are prefilled together while others decode, within a bounded wait,
and every request still gets exactly the tokens it would get alone."""

from __future__ import annotations

import torch

from llmos.serving.engine import Engine, TokenEvent
from llmos.serving.sampling import SamplingParams

from .conftest import build_model


def step(engine: Engine) -> None:
    """One iteration of the engine thread's loop, run in the test's thread."""
    admitted = engine._take_admissible()
    if admitted:
        engine._prefill(admitted)
    if engine.rows:
        engine._decode_step()


def solo_tokens(model, prompt: list[int], n: int) -> list[int]:
    ids = torch.tensor([prompt])
    for _ in range(n):
        ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids[0, len(prompt):].tolist()


class Recorder:
    def __init__(self, engine: Engine) -> None:
        self.engine, self.tokens, self.first_step = engine, [], None

    def __call__(self, event: TokenEvent) -> None:
        if event.kind == "token":
            self.tokens.append(event.token_id)
            if self.first_step is None:
                self.first_step = self.engine.steps


@torch.no_grad()
def test_prompts_arriving_during_decoding_are_prefilled_together_and_decode_exactly():
    model = build_model(400)
    engine = Engine(model, max_batch=8, prefill_min_batch=3, prefill_max_wait_steps=50)
    prefills = []
    original = engine._prefill
    engine._prefill = lambda requests: (prefills.append(len(requests)), original(requests))
    greedy = SamplingParams(max_tokens=12, temperature=0)
    running = Recorder(engine)
    engine.submit([5, 6, 7], greedy, running)
    step(engine)  # nothing is decoding: prefilled at once
    late = [Recorder(engine) for _ in range(3)]
    prompts = [[10 + i, 20, 30 + i, 40][: 2 + i] for i in range(3)]
    for recorder, prompt in zip(late[:2], prompts[:2], strict=True):
        engine.submit(prompt, greedy, recorder)
        step(engine)
    assert prefills == [1]  # two waiting are fewer than prefill_min_batch: keep decoding
    engine.submit(prompts[2], greedy, late[2])
    for _ in range(20):
        step(engine)
    assert prefills == [1, 3]
    assert running.tokens == solo_tokens(model, [5, 6, 7], 12)
    for recorder, prompt in zip(late, prompts, strict=True):
        assert recorder.tokens == solo_tokens(model, prompt, 12)


@torch.no_grad()
def test_a_lone_newcomer_waits_at_most_prefill_max_wait_steps():
    model = build_model(400)
    engine = Engine(model, max_batch=8, prefill_min_batch=4, prefill_max_wait_steps=3)
    long = Recorder(engine)
    engine.submit([1, 2, 3], SamplingParams(max_tokens=20, temperature=0), long)
    step(engine)
    step(engine)
    newcomer = Recorder(engine)
    engine.submit([7, 8], SamplingParams(max_tokens=2, temperature=0), newcomer)
    arrived = engine.steps
    for _ in range(6):
        step(engine)
    assert newcomer.first_step is not None
    assert 3 <= newcomer.first_step - arrived <= 4  # gathered for 3 steps, then prefilled
    assert newcomer.tokens == solo_tokens(model, [7, 8], 2)

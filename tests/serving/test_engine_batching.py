"""Engine scheduling: new prompts are prefilled together while others decode, within a bounded wait,
and every request still gets exactly the tokens it would get alone."""

from __future__ import annotations

import torch

from llmos.serving.engine import Engine, TokenEvent
from llmos.serving.sampling import SamplingParams

from .conftest import build_model


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
    engine.step()  # nothing is decoding: prefilled at once
    late = [Recorder(engine) for _ in range(3)]
    prompts = [[10 + i, 20, 30 + i, 40][: 2 + i] for i in range(3)]
    for recorder, prompt in zip(late[:2], prompts[:2], strict=True):
        engine.submit(prompt, greedy, recorder)
        engine.step()
    assert prefills == [1]  # two waiting are fewer than prefill_min_batch: keep decoding
    engine.submit(prompts[2], greedy, late[2])
    for _ in range(20):
        engine.step()
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
    engine.step()
    engine.step()
    newcomer = Recorder(engine)
    engine.submit([7, 8], SamplingParams(max_tokens=2, temperature=0), newcomer)
    arrived = engine.steps
    for _ in range(6):
        engine.step()
    assert newcomer.first_step is not None
    assert 3 <= newcomer.first_step - arrived <= 4  # gathered for 3 steps, then prefilled
    assert newcomer.tokens == solo_tokens(model, [7, 8], 2)


class Collector:
    def __init__(self) -> None:
        self.events: list[TokenEvent] = []

    def __call__(self, event: TokenEvent) -> None:
        self.events.append(event)

    def tokens(self) -> list[int]:
        return [e.token_id for e in self.events if e.kind == "token"]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events if e.kind != "token"]


def failing_after(n: int):
    """A constraint factory whose processor raises on its n-th call, as a bug in one row would."""
    def make(prompt_length: int):
        calls = []

        def processor(history, scores):
            calls.append(1)
            if len(calls) >= n:
                raise RuntimeError("probability tensor contains inf, nan or element < 0")
            return scores

        return processor

    return make


@torch.no_grad()
def test_a_row_that_fails_while_sampling_fails_alone_and_its_batch_goes_on():
    model = build_model(400)
    engine = Engine(model, max_batch=8)
    good, bad_at_prefill, bad_later = Collector(), Collector(), Collector()
    engine.submit([5, 6, 7], SamplingParams(max_tokens=10, temperature=0), good)
    engine.submit([8, 9], SamplingParams(max_tokens=10, constraint=failing_after(1)), bad_at_prefill)
    engine.submit([1, 2], SamplingParams(max_tokens=10, constraint=failing_after(3)), bad_later)
    for _ in range(12):
        engine.step()
    assert good.tokens() == solo_tokens(model, [5, 6, 7], 10)
    assert good.kinds() == ["done"]
    assert bad_at_prefill.kinds() == ["error"] and "inf, nan" in bad_at_prefill.events[-1].message
    assert bad_later.kinds() == ["error"] and len(bad_later.tokens()) == 2
    assert engine.rows == [] and engine.cache.free_rows == 8


@torch.no_grad()
def test_a_temperature_too_small_to_divide_by_decodes_greedily():
    model = build_model(400)
    engine = Engine(model, max_batch=8)
    tiny = Collector()
    engine.submit([5, 6, 7], SamplingParams(max_tokens=6, temperature=1e-40), tiny)
    for _ in range(8):
        engine.step()
    assert tiny.kinds() == ["done"]
    assert tiny.tokens() == solo_tokens(model, [5, 6, 7], 6)


def penalized_tokens(model, prompt: list[int], n: int, penalty: float) -> list[int]:
    """Greedy decoding through transformers' own RepetitionPenaltyLogitsProcessor."""
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    processor = RepetitionPenaltyLogitsProcessor(penalty)
    ids = torch.tensor([prompt])
    for _ in range(n):
        scores = processor(ids, model(ids).logits[:, -1].float())
        ids = torch.cat([ids, scores.argmax(-1, keepdim=True)], dim=1)
    return ids[0, len(prompt):].tolist()


@torch.no_grad()
def test_repetition_penalty_applies_to_its_own_row_only_and_matches_transformers():
    model = build_model(400)
    engine = Engine(model, max_batch=8)
    penalized, plain = Collector(), Collector()
    engine.submit([1, 2], SamplingParams(max_tokens=14, temperature=0, repetition_penalty=2.0), penalized)
    engine.submit([1, 2], SamplingParams(max_tokens=14, temperature=0), plain)
    for _ in range(16):
        engine.step()
    expected = penalized_tokens(model, [1, 2], 14, 2.0)
    assert expected != solo_tokens(model, [1, 2], 14)  # the penalty matters for this prompt
    assert penalized.tokens() == expected
    assert plain.tokens() == solo_tokens(model, [1, 2], 14)

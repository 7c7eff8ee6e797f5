"""Engine scheduling: long prompts in chunks between decode steps, shared prefixes computed once, a full
KV budget handled by preemption, and every request still gets exactly the tokens it would get alone."""

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
def test_a_long_prompt_is_computed_in_chunks_while_the_others_decode_exactly():
    model = build_model(400)
    engine = Engine(model, max_batch=8, chunk_tokens=16)
    greedy = SamplingParams(max_tokens=12, temperature=0)
    running = Recorder(engine)
    engine.submit([5, 6, 7], greedy, running)
    engine.step()  # nothing else is running: prefilled and its first token chosen at once
    chunks = []
    prefill = engine._prefill
    engine._prefill = lambda wave: (chunks.extend((c.start, c.end) for c in wave), prefill(wave))
    long_prompt = [(i * 7) % 300 + 3 for i in range(70)]
    late = Recorder(engine)
    engine.submit(long_prompt, greedy, late)
    before = len(running.tokens)
    for _ in range(5):
        engine.step()
    assert chunks == [(0, 16), (16, 32), (32, 48), (48, 64), (64, 70)]  # one 16-token chunk per step
    assert len(running.tokens) == before + 5  # ... and the running request got a token every step
    for _ in range(20):
        engine.step()
    assert running.tokens == solo_tokens(model, [5, 6, 7], 12)
    assert late.tokens == solo_tokens(model, long_prompt, 12)


@torch.no_grad()
def test_a_shared_prefix_is_computed_once_and_reused_by_later_requests():
    model = build_model(400)
    engine = Engine(model, max_batch=8, chunk_tokens=32)
    system = [(i * 11) % 300 + 3 for i in range(40)]  # 2 full blocks of 16, and 8 tokens
    computed = []
    prefill = engine._prefill
    engine._prefill = lambda wave: (computed.extend(c.end - c.start for c in wave), prefill(wave))
    first, second = Recorder(engine), Recorder(engine)
    greedy = SamplingParams(max_tokens=6, temperature=0)
    engine.submit(system + [4, 5], greedy, first)
    for _ in range(8):
        engine.step()
    engine.submit(system + [9, 9, 9], greedy, second)
    for _ in range(8):
        engine.step()
    assert computed == [42, 11]  # 42 tokens (one forward: nobody decodes); then 43 less two cached blocks
    assert first.tokens == solo_tokens(model, system + [4, 5], 6)
    assert second.tokens == solo_tokens(model, system + [9, 9, 9], 6)


@torch.no_grad()
def test_requests_arriving_together_with_one_prefix_compute_it_once():
    model = build_model(400)
    engine = Engine(model, max_batch=8, chunk_tokens=64)
    system = [(i * 13) % 300 + 3 for i in range(40)]  # 2 full blocks of 16, and 8 tokens
    prompts = [system + [4 + i, 9, 9 + i] for i in range(4)]
    computed = []
    prefill = engine._prefill
    engine._prefill = lambda wave: (computed.append([(c.request.id, c.start, c.end) for c in wave]), prefill(wave))
    greedy = SamplingParams(max_tokens=6, temperature=0)
    recorders = [Recorder(engine) for _ in prompts]
    ids = [engine.submit(prompt, greedy, recorder).id for prompt, recorder in zip(prompts, recorders, strict=True)]
    for _ in range(12):
        engine.step()
    # the first computes the prefix; the others wait for its blocks, then compute their 11 last
    # tokens together in one forward
    assert computed == [[(ids[0], 0, 43)], [(i, 32, 43) for i in ids[1:]]]
    for recorder, prompt in zip(recorders, prompts, strict=True):
        assert recorder.tokens == solo_tokens(model, prompt, 6)


@torch.no_grad()
def test_a_full_kv_budget_preempts_the_latest_request_which_resumes_exactly():
    model = build_model(400)
    per_token = 2 * model.config.n_layers * model.config.n_kv_heads * model.config.head_dim * 4
    engine = Engine(model, max_batch=4, kv_budget_bytes=per_token * 160, max_len=128)  # 10 blocks of 16
    greedy = SamplingParams(max_tokens=60, temperature=0)
    recorders = [Recorder(engine) for _ in range(3)]
    prompts = [[3 + i, 40, 50 + i] for i in range(3)]
    for recorder, prompt in zip(recorders, prompts, strict=True):
        engine.submit(prompt, greedy, recorder)
    preempted = []
    plan = engine.scheduler.plan
    engine.scheduler.plan = lambda: (lambda p: (preempted.extend(p.preempted), p)[1])(plan())
    for _ in range(200):
        engine.step()
    assert preempted  # 3 x 63 tokens need 12 blocks: someone had to wait
    for recorder, prompt in zip(recorders, prompts, strict=True):
        assert recorder.tokens == solo_tokens(model, prompt, 60)
    assert engine.blocks.used() == 0


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
    assert engine.rows == [] and engine.blocks.used() == 0


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


@torch.no_grad()
def test_rows_with_and_without_an_adapter_share_a_batch_and_each_decodes_as_alone():
    from llmos.adapters import add_lora, lora_layers, set_adapter

    model = build_model(400)
    add_lora(model, {f"transformer.blocks.{i}.attn.qkv": [(0, model.transformer.blocks[i].attn.qkv.out_features)]
                     for i in range(2)}, r=4, name="tools")
    for _, layer in lora_layers(model):
        for b in layer.adapters["tools"].B:
            torch.nn.init.normal_(b, std=0.5)  # a fresh adapter is zero: make it matter
    set_adapter(model, None)
    engine = Engine(model, max_batch=8)
    prompts = [[5, 6, 7], [8, 9, 10, 11], [3, 4], [12, 13, 14]]
    wants = [True, False, True, False]
    recorders = [Recorder(engine) for _ in prompts]
    for prompt, want, recorder in zip(prompts, wants, recorders, strict=True):
        engine.submit(prompt, SamplingParams(max_tokens=10, temperature=0, adapter="tools" if want else None),
                      recorder)
    for _ in range(14):
        engine.step()
    for prompt, want, recorder in zip(prompts, wants, recorders, strict=True):
        set_adapter(model, "tools" if want else None)
        alone = solo_tokens(model, prompt, 10)
        assert recorder.tokens == alone
    set_adapter(model, "tools")
    tuned = solo_tokens(model, prompts[0], 10)
    set_adapter(model, None)
    assert tuned != solo_tokens(model, prompts[0], 10)  # the adapter changes this prompt's answer

"""Constrained decoding's cost per token: generate with and without a JSON schema, and the same
against transformers + llguidance's own torch helpers, one process.

Models (fp32, torch.set_num_threads(--threads)):
- `smollm2`: SmolLM2-135M-Instruct, the embedded GGUF dequantized (`quantize="none"`); the
  transformers peer loads the same file through its own GGUF loader;
- `gpt2-shape`: a GPT-2 124M shape (12 layers, 768 wide, learned positions) with random weights,
  built twice with the same weights (tests/generation/pairs.py). There is no GPT-2 tokenizer
  offline, so its vocabulary is SmolLM2's 49,152 tokens and the grammar runs on that tokenizer.

Prompts: 8 chat prompts asking for a list of customers (left-padded as a batch); batch 1 uses
the first. The schema is an object holding exactly 16 customer records (name, city, email, note,
strings with maxLength). Its shortest valid text is longer than --new-tokens, so every
constrained row decodes exactly --new-tokens tokens with the grammar live on each step (checked),
and the free rows decode the same number with end-of-sequence ignored: both sides run the same
forward passes, and the time difference is the grammar's. tokens/s = rows x new tokens / wall
time of the whole generate call (prompt included on both sides), best of --repeats.

Peer: transformers `generate` with a `LogitsProcessor` made of llguidance's own pieces
(`llguidance.hf.from_tokenizer`, `llguidance.torch.fill_next_token_bitmask_par` on an
`LLExecutor`, `apply_token_bitmask_inplace`); llguidance 1.x ships those helpers rather than
a ready transformers class. Both sides compile the same grammar (LLMOS's JSON_STYLE).
The LLMOS rows also split the grammar's time per step, measured inside generate: the whole
processor call, the engine's own work in it (llguidance consume + mask, all rows) and the rest
(the torch bit-unpacking and masking, Python), plus the time to build the processor once per
generate call. Our goal: <= 10% overhead per token.
On a machine shared with other jobs, 2 torch threads stall on every parallel op (the masking's
49k-wide ops included); --threads 1 gives steadier figures there.

Measured (quiet machine, --threads 2 --new-tokens 64 --repeats 3, 2026-11-30): LLMOS overhead
-0.5-2.3% (SmolLM2 -0.5% / 0.5% at batch 1 / 8; GPT-2 shape 1.6% / 2.3%), transformers +
llguidance -1.9-2.6%; with the schema LLMOS is 1.52x / 1.45x transformers' tokens/s on SmolLM2
(0.97x / 1.26x on the GPT-2 shape), same tokens. The grammar costs 0.4-0.7 ms per step at
batch 1 and 0.9-1.4 ms at batch 8 (engine 0.15-0.8 ms, the rest unpacking and masking), plus
~1-2 ms per call to build the processor. Run:

    .venv/bin/python benchmarks/constrained_overhead.py            # both models, batch 1 and 8
    .venv/bin/python benchmarks/constrained_overhead.py --quick    # smoke: SmolLM2, 24 tokens, 1 repeat
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "generation"))

ITEM = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 40}, "city": {"type": "string", "maxLength": 40},
    "email": {"type": "string", "maxLength": 60}, "note": {"type": "string", "maxLength": 120}},
    "required": ["name", "city", "email", "note"], "additionalProperties": False}
SCHEMA = {"type": "object", "properties": {"customers": {"type": "array", "items": ITEM, "minItems": 16,
                                                         "maxItems": 16}},
          "required": ["customers"], "additionalProperties": False}
SHOPS = ("bakery in Lyon", "bicycle repair shop", "bookshop in Porto", "garden centre", "music school",
         "pet grooming salon", "coffee roaster", "hardware store in Leeds")


def prompts(tokenizer, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, T) left-padded chat prompts and their attention mask."""
    rows = [tokenizer.apply_chat_template(
        [{"role": "user", "content": f"List 16 fictional customers of a {shop} as JSON: for each a name, "
                                     "a city, an email address and a one-sentence note."}],
        add_generation_prompt=True, return_tensors="pt")[0].tolist() for shop in SHOPS[:batch]]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


class LLGuidanceHF:
    """A transformers LogitsProcessor from llguidance's own helpers: one matcher per row, masks
    computed in parallel by an LLExecutor, applied by llguidance's compiled bitmask kernel."""

    def __init__(self, ll_tokenizer, grammar: str, rows: int, vocab: int) -> None:
        import llguidance
        import llguidance.torch as lt

        self.lt = lt
        self.matchers = [llguidance.LLMatcher(ll_tokenizer, grammar, log_level=0) for _ in range(rows)]
        self.executor = llguidance.LLExecutor()
        self.bitmask = lt.allocate_token_bitmask(rows, vocab)
        self.started = False

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.started:
            for matcher, token in zip(self.matchers, input_ids[:, -1].tolist(), strict=True):
                if not matcher.is_stopped():
                    matcher.consume_token(token)
        self.started = True
        self.lt.fill_next_token_bitmask_par(self.executor, [(m, i) for i, m in enumerate(self.matchers)],
                                            self.bitmask)
        self.lt.apply_token_bitmask_inplace(scores, self.bitmask)
        return scores


class TimedMatcher:
    """An llguidance matcher whose mask and consume calls add their time to a ProcessorClock."""

    def __init__(self, matcher, clock: ProcessorClock) -> None:
        self.matcher, self.clock = matcher, clock

    def consume_token(self, token: int):
        start = time.perf_counter()
        try:
            return self.matcher.consume_token(token)
        finally:
            self.clock.engine_seconds += time.perf_counter() - start

    def unsafe_compute_mask_ptr(self, *args):
        start = time.perf_counter()
        try:
            return self.matcher.unsafe_compute_mask_ptr(*args)
        finally:
            self.clock.engine_seconds += time.perf_counter() - start

    def __getattr__(self, name: str):
        return getattr(self.matcher, name)


class ProcessorClock:
    """Wall time spent building LLMOS's GrammarProcessor (once per generate call), in its
    __call__ (once per step) and, within that, in the engine's matchers; patched for the duration."""

    def __init__(self) -> None:
        self.seconds, self.calls, self.setup_seconds, self.setups, self.engine_seconds = 0.0, 0, 0.0, 0, 0.0

    @contextmanager
    def patched(self):
        from llmos.generation.constrained import GrammarProcessor

        original_init, original_call = GrammarProcessor.__init__, GrammarProcessor.__call__

        def timed_init(processor, *args, **kwargs):
            start = time.perf_counter()
            try:
                original_init(processor, *args, **kwargs)
            finally:
                self.setup_seconds += time.perf_counter() - start
                self.setups += 1
            processor.matchers = [None if m is None else TimedMatcher(m, self) for m in processor.matchers]

        def timed_call(processor, input_ids, scores):
            start = time.perf_counter()
            try:
                return original_call(processor, input_ids, scores)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        GrammarProcessor.__init__, GrammarProcessor.__call__ = timed_init, timed_call
        try:
            yield self
        finally:
            GrammarProcessor.__init__, GrammarProcessor.__call__ = original_init, original_call


def load(name: str):
    """(LLMOS model, transformers model, llmos tokenizer) for one model row."""
    import transformers

    from llmos import AutoModelForCausalLM, AutoTokenizer
    from llmos.model_names import resolve_model

    transformers.logging.set_verbosity_error()
    path = resolve_model("smollm2").path
    tokenizer = AutoTokenizer.from_pretrained(path)
    if name == "smollm2":
        ours = AutoModelForCausalLM.from_pretrained(path, quantize="none")
        hf = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                               dtype=torch.float32).eval()
        return ours, hf, tokenizer
    from pairs import gpt2_pair

    eos = tokenizer.eos_token_id
    hf, ours = gpt2_pair(vocab=49152, d_model=768, n_layers=12, n_heads=12, max_seq_len=1024, std=0.02,
                         eos=eos, pad=eos)
    return ours, hf, tokenizer


def best_interleaved(fns: dict, repeats: int) -> dict:
    """{name: (best seconds, last output)}: the variants take turns, so a change in machine load
    between them hits all alike."""
    times: dict = {name: [] for name in fns}
    outs: dict = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (min(times[name]), outs[name]) for name in fns}


def variants(ours, hf, tokenizer, ll_hf, grammar: str, batch: int) -> dict:
    """The four generate calls of one row, each taking the number of new tokens."""
    import transformers

    ids, mask = prompts(tokenizer, batch)
    ours_mask = mask if batch > 1 else None
    vocab, eos = ours.config.vocab_size, tokenizer.eos_token_id

    def ours_free(n):
        return ours.generate(ids, attention_mask=ours_mask, max_new_tokens=n, min_new_tokens=n,
                             eos_token_id=None, do_sample=False)

    def ours_schema(n):
        return ours.generate(ids, attention_mask=ours_mask, max_new_tokens=n, eos_token_id=eos,
                             tokenizer=tokenizer, json_schema=SCHEMA, do_sample=False)

    def hf_free(n):
        return hf.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                           pad_token_id=eos)

    def hf_schema(n):
        processor = LLGuidanceHF(ll_hf, grammar, batch, vocab)
        return hf.generate(ids, attention_mask=mask, max_new_tokens=n, do_sample=False, pad_token_id=eos,
                           logits_processor=transformers.LogitsProcessorList([processor]))

    return {"ours_free": ours_free, "ours_schema": ours_schema, "hf_free": hf_free, "hf_schema": hf_schema}


def run_model(name: str, batches: list[int], new: int, repeats: int) -> list[dict]:
    import functools

    import transformers
    from llguidance import LLMatcher
    from llguidance.hf import from_tokenizer

    from llmos.generation.constrained import JSON_STYLE

    ours, hf, tokenizer = load(name)
    vocab, eos = ours.config.vocab_size, tokenizer.eos_token_id
    grammar = LLMatcher.grammar_from_json_schema(json.dumps(SCHEMA), defaults=JSON_STYLE)
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer,
                                                  eos_token=tokenizer.eos_token)
    ll_hf = from_tokenizer(hf_tok, n_vocab=vocab, eos_token=eos)
    results = []
    for batch in batches:
        fns = variants(ours, hf, tokenizer, ll_hf, grammar, batch)
        clock = ProcessorClock()
        with torch.inference_mode():
            for fn in fns.values():  # warm-up (and llguidance's torch.compile of its masking kernel)
                fn(4)
            with clock.patched():
                t = best_interleaved({key: functools.partial(fn, new) for key, fn in fns.items()}, repeats)
        T = prompts(tokenizer, batch)[0].shape[1]
        new_rows, hf_rows = t["ours_schema"][1][:, T:], t["hf_schema"][1][:, T:]
        for label, rows in (("LLMOS", new_rows), ("transformers", hf_rows)):
            if rows.shape[1] != new or bool((rows == eos).any()):
                raise SystemExit(f"{name} batch {batch}: a {label} constrained row ended before {new} tokens; "
                                 "lower --new-tokens")
        results.append(dict(
            model=name, batch=batch, tokens=batch * new,
            **{key: seconds for key, (seconds, _) in t.items()},
            processor_ms=1000 * clock.seconds / max(clock.calls, 1),
            engine_ms=1000 * clock.engine_seconds / max(clock.calls, 1),
            setup_ms=1000 * clock.setup_seconds / max(clock.setups, 1),
            model_ms=1000 * t["ours_free"][0] / new, same=torch.equal(new_rows, hf_rows),
            sample=tokenizer.decode(new_rows[0].tolist())[:70]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2,gpt2-shape", help="comma list: smollm2,gpt2-shape")
    parser.add_argument("--batches", default="1,8", help="comma list of batch sizes (at most 8)")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens per row (< 300: the schema's minimum)")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: smollm2, 24 tokens, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.models, args.new_tokens, args.repeats = "smollm2", 24, 1
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    if max(batches) > len(SHOPS):
        parser.error(f"--batches: at most {len(SHOPS)} rows")
    import llguidance
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, llguidance "
          f"{llguidance.__version__ if hasattr(llguidance, '__version__') else '?'}, {args.threads} threads; "
          f"{args.new_tokens} new tokens per row, greedy, best of {args.repeats}")
    results = []
    for name in args.models.split(","):
        results += run_model(name, batches, args.new_tokens, args.repeats)
    print("what ran in this run: every column, in this process, on the same prompts and grammar")
    print(f"\n{'model':11}{'batch':>6} {'LLMOS free':>11} {'schema':>8} {'overhead':>9}   "
          f"{'HF free':>8} {'HF+llg':>8} {'overhead':>9}   {'schema LLMOS/HF':>15}  tokens")
    for r in results:
        tps = {k: r["tokens"] / r[k] for k in ("ours_free", "ours_schema", "hf_free", "hf_schema")}
        print(f"{r['model']:11}{r['batch']:6} {tps['ours_free']:11.1f} {tps['ours_schema']:8.1f} "
              f"{r['ours_schema'] / r['ours_free'] - 1:9.1%}   {tps['hf_free']:8.1f} {tps['hf_schema']:8.1f} "
              f"{r['hf_schema'] / r['hf_free'] - 1:9.1%}   {tps['ours_schema'] / tps['hf_schema']:14.2f}x  "
              f"{'same' if r['same'] else 'differ'}")
    print("(tokens/s = rows x new tokens / generate wall time; overhead = schema time / free time - 1)")
    print(f"\n{'model':11}{'batch':>6} {'decode ms/step':>15} {'grammar ms/step':>16} {'engine':>8} {'rest':>8}"
          f" {'setup ms/call':>14}  first row")
    for r in results:
        print(f"{r['model']:11}{r['batch']:6} {r['model_ms']:15.2f} {r['processor_ms']:16.3f} "
              f"{r['engine_ms']:8.3f} {r['processor_ms'] - r['engine_ms']:8.3f} {r['setup_ms']:14.1f}  "
              f"{r['sample']!r}")
    print("(grammar = LLMOS GrammarProcessor per step; engine = llguidance mask + consume, all rows; "
          "rest = torch bit-unpacking, masking and Python; setup = building the GrammarProcessor, once per "
          "generate call)")
    worst = max(results, key=lambda r: r["ours_schema"] / r["ours_free"])
    overhead = worst["ours_schema"] / worst["ours_free"] - 1
    verdict = "meets" if overhead <= 0.10 else "MISSES"
    print(f"\nverdict: LLMOS worst overhead {overhead:.1%} per token ({worst['model']}, batch {worst['batch']}) "
          f"{verdict} our goal of <= 10%")


if __name__ == "__main__":
    main()

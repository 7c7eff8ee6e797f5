"""Layer 5: `LocalGenerator`, the `Generator` backend that runs `generate()` on a model in this process.

The prompts of one `generate` call are decoded as left-padded batches (one per
distinct setting; each row under its own constraint), stopping at the model's
stop ids (`replies.stop_token_ids`) and stop strings, and cut and decoded by
`replies.cut_reply`, as every backend cuts. The params are the whole request:
the model's shipped sampling defaults (its generation_config.json) are not
mixed in, so a reply here equals the same request's through the engine. A
lock makes threads take turns on the model. `stream` runs `generate` with a
streamer in a worker thread, one prompt after another; closing the iterator
stops the worker at its next token. With `tools_adapter` (a LoRA adapter the
model holds, inactive), prompts that may call tools decode through it and the
others through the base model.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import torch

from llmos.adapters import adapter_names, using_adapter
from llmos.generation.generate import generate
from llmos.generation.replies import (
    TextStream,
    cut_reply,
    left_pad,
    model_eos_ids,
    pad_token_id,
    stop_token_ids,
)
from llmos.generation.service import (
    Completion,
    GenerationParams,
    Generator,
    Prompt,
    StreamEvent,
    check_prompts,
)
from llmos.generation_config import GenerationConfig, GenerationError
from llmos.tokenizer.from_any import as_tokenizer


class _Cancelled(Exception):
    """The consumer of a stream went away; the worker stops decoding."""


class _QueueStreamer:
    """generate()'s streamer protocol: new token ids onto a queue (the prompt skipped)."""

    def __init__(self, out: queue.Queue, cancelled: threading.Event) -> None:
        self.out, self.cancelled, self.prompt_seen = out, cancelled, False

    def put(self, value: torch.Tensor) -> None:
        if self.cancelled.is_set():
            raise _Cancelled
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.out.put(("token", int(value.reshape(-1)[0])))

    def end(self) -> None:
        pass


class LocalGenerator(Generator):
    """`LocalGenerator(model, tokenizer)`: a causal LM and its tokenizer (any `as_tokenizer` takes)."""

    def __init__(self, model: Any, tokenizer: Any, stop_ids: Sequence[int] | None = None,
                 tools_adapter: str | None = None) -> None:
        if not getattr(model.config, "causal", True) or not hasattr(model, "lm_head"):
            raise GenerationError(f"a Generator needs a causal language model; got a {type(model).__name__}",
                                  param="model")
        if tools_adapter is not None and tools_adapter not in adapter_names(model):
            raise GenerationError(f"tools_adapter={tools_adapter!r}: the model holds no such adapter (it holds "
                                  f"{adapter_names(model) or 'none'})", param="tools_adapter")
        self.tools_adapter = tools_adapter
        self.model, self.tokenizer = model, as_tokenizer(tokenizer)
        self.stop_ids = list(stop_ids) if stop_ids is not None else stop_token_ids(self.tokenizer,
                                                                                   model_eos_ids(model))
        self.pad_id = pad_token_id(self.tokenizer, self.stop_ids)
        self.max_len = model.config.max_seq_len
        self.lock = threading.Lock()

    # ---- generate ---------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt],
                 params: GenerationParams | Sequence[GenerationParams] | None = None) -> list[Completion]:
        settings, rows = self.prompt_rows(check_prompts(prompts), params)
        groups: list[tuple[tuple[GenerationParams, bool], list[int]]] = []  # rows that decode together
        for i, p in enumerate(settings):
            key = (p.replace(constraint=None, tools=(), tool_choice="auto"), self._adapted(p))
            for shared, members in groups:
                if shared == key:
                    members.append(i)
                    break
            else:
                groups.append((key, [i]))
        out: dict[int, Completion] = {}
        with self.lock:
            for (shared, adapted), members in groups:
                done = self._decode([rows[i] for i in members], shared,
                                    [settings[i].reply_constraint() for i in members], adapted=adapted)
                out.update(zip(members, done, strict=True))
        return [out[i] for i in range(len(rows))]

    def _config(self, params: GenerationParams) -> GenerationConfig:
        sampling: dict[str, Any] = {"do_sample": False}
        if not params.greedy:
            sampling = {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p,
                        "top_k": params.top_k, "min_p": params.min_p or None}
        return GenerationConfig(max_new_tokens=params.max_new_tokens, repetition_penalty=params.repetition_penalty,
                                seed=params.seed, stop_strings=list(params.stop) or None,
                                eos_token_id=self.stop_ids or None, pad_token_id=self.pad_id,
                                bos_token_id=self.model.config.bos_token_id, return_dict_in_generate=True,
                                output_logits=params.logprobs, **sampling).replace(**params.extra)

    def _adapted(self, params: GenerationParams) -> bool:
        """Whether a request decodes through the tool-use adapter."""
        return self.tools_adapter is not None and params.calls_tools

    def _decode(self, rows: list[list[int]], params: GenerationParams, constraints: list[dict | None],
                streamer: Any = None, adapted: bool = False) -> list[Completion]:
        """Rows of the same settings, each under its own constraint; through the tools adapter when
        `adapted`."""
        input_ids, mask = left_pad(rows, self.pad_id)
        per_row = {"constraints": constraints} if any(c is not None for c in constraints) else {}
        adapter = self.tools_adapter if adapted else None
        with using_adapter(self.model, adapter) if self.tools_adapter is not None else nullcontext():
            out = generate(self.model, input_ids.to(self.model.device), attention_mask=mask.to(self.model.device),
                           generation_config=self._config(params), tokenizer=self.tokenizer, streamer=streamer,
                           **per_row)
        new = out.sequences[:, input_ids.shape[1]:]
        scores = None
        if params.logprobs and out.logits:
            logits = torch.stack(out.logits, 1).float().log_softmax(-1)  # (N, new, V): the model's own
            scores = logits.gather(-1, new[:, : logits.shape[1], None].to(logits.device))[..., 0]
        completions = []
        for i, row in enumerate(new.tolist()):
            text, kept, reason = cut_reply(self.tokenizer, row, self.stop_ids, params.stop)
            log_prob = None
            if params.logprobs:
                scored = len(kept) + (len(kept) < len(row) and row[len(kept)] in self.stop_ids)
                if scores is not None:
                    log_prob = float(scores[i, :scored].mean()) if scored else 0.0
                elif out.sequences_scores is not None:  # beam search: the beam's normalised score
                    log_prob = float(out.sequences_scores[i])
            completions.append(Completion(text, kept, reason, log_prob, params.max_new_tokens))
        return completions

    # ---- stream -----------------------------------------------------------------------------------

    def stream(self, prompts: Sequence[Prompt],
               params: GenerationParams | Sequence[GenerationParams] | None = None) -> Iterator[StreamEvent]:
        settings, rows = self.prompt_rows(check_prompts(prompts), params)
        for index, (row, p) in enumerate(zip(rows, settings, strict=True)):
            yield from self._stream_one(index, row, p)

    def _stream_one(self, index: int, row: list[int], params: GenerationParams) -> Iterator[StreamEvent]:
        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()

        def work() -> None:
            try:
                with self.lock:
                    [completion] = self._decode([row], params.replace(constraint=None), [params.reply_constraint()],
                                                _QueueStreamer(events, cancelled), adapted=self._adapted(params))
                events.put(("done", completion))
            except _Cancelled:
                events.put(("cancelled", None))
            except Exception as exc:  # handed to the consumer, which raises it in its own thread
                events.put(("error", exc))

        threading.Thread(target=work, name="llmos-local-stream", daemon=True).start()
        text, sent, ended = TextStream(self.tokenizer, params.stop), "", False
        try:
            while True:
                kind, value = events.get()
                if kind == "token":
                    if ended or value in self.stop_ids:
                        ended = True
                        continue
                    delta = text.push(value)
                    ended = text.stopped
                    if delta:
                        sent += delta
                        yield StreamEvent(index, delta)
                elif kind == "done":
                    rest = value.text[len(sent):] if value.text.startswith(sent) else ""
                    yield StreamEvent(index, rest, value)
                    return
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            cancelled.set()

    # ---- scoring ----------------------------------------------------------------------------------

    def next_token_log_probs(self, prompts: Sequence[Prompt], token_ids: Sequence[int]) -> list[list[float]]:
        from llmos.generation.scoring import next_token_log_probs

        rows = [self.prompt_ids(p) for p in check_prompts(prompts)]
        with self.lock, using_adapter(self.model, None) if self.tools_adapter is not None else nullcontext():
            return next_token_log_probs(self.model, rows, list(token_ids)).tolist()


def as_generator(model: Any, tokenizer: Any = None, tools_adapter: str | None = None) -> Generator:
    """A `Generator` as it is; a loaded causal LM (with its tokenizer) as a `LocalGenerator`."""
    if isinstance(model, Generator):
        return model
    if tokenizer is None:
        raise GenerationError("a model in this process needs its tokenizer; or pass a Generator (the server's "
                              "engine, or RemoteGenerator for a server over HTTP)", param="tokenizer")
    return LocalGenerator(model, tokenizer, tools_adapter=tools_adapter)

"""Layer 5: the greedy / sampling loop: prefill the prompt once, then one token per step.

The KV cache, the output buffer and the attention mask are allocated once for
the whole request; each step runs the model on one new token per row with the
LM head on that position only. Rows stop on their own (EOS or a stop string)
and are padded while the others continue; the loop ends when all rows stopped.
Left-padded batches get position ids counted from each row's first real token,
as transformers does, so padding never shifts a row's positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmos.generation.decode_step import next_logits
from llmos.generation.logits_process import apply_processors, follow_rows
from llmos.generation.request import GenerationRequest
from llmos.generation.stopping import eos_hits
from llmos.generation_config import GenerationError
from llmos.model.cache import KVCache
from llmos.model.outputs import ModelOutput


@dataclass(eq=False)
class GenerateOutput(ModelOutput):
    """What `generate(..., return_dict_in_generate=True)` returns; fields in the order of transformers'
    GenerateDecoderOnlyOutput / GenerateBeamDecoderOnlyOutput, indexable as theirs (`out[0]`, `out["scores"]`)."""

    sequences: torch.Tensor  # (N, prompt + new)
    sequences_scores: torch.Tensor | None = None  # (N,) beam search: length-penalised score
    scores: tuple[torch.Tensor, ...] | None = None  # per step (N, V): processed scores
    logits: tuple[torch.Tensor, ...] | None = None  # per step (N, V): raw logits
    beam_indices: torch.Tensor | None = None  # (N, new) beam search: source beam per step
    token_log_probs: torch.Tensor | None = None  # (N, new): log p of each chosen token (ours only)


def prefill_positions(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, T) position ids that start at 0 on each row's first real token (None: no padding)."""
    if attention_mask is None:
        return None
    return (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)


@torch.inference_mode()
def sample_loop(model, request: GenerationRequest, streamer=None) -> GenerateOutput:
    """Greedy decoding (argmax) or sampling (multinomial over processed scores)."""
    cfg = request.config
    input_ids, mask = request.input_ids, request.attention_mask
    if cfg.num_return_sequences > 1:
        input_ids = input_ids.repeat_interleave(cfg.num_return_sequences, dim=0)
        mask = mask.repeat_interleave(cfg.num_return_sequences, dim=0) if mask is not None else None
    N, T = input_ids.shape
    max_new = request.max_new_tokens
    device = input_ids.device
    cache = KVCache(model.config, N, max_len=T + max_new, dtype=model.dtype, device=device)
    sequences = torch.full((N, T + max_new), request.pad_token_id, dtype=torch.long, device=device)
    sequences[:, :T] = input_ids
    mask_buffer = None
    positions = prefill_positions(mask)
    if mask is not None:
        mask_buffer = torch.ones(N, T + max_new, dtype=torch.long, device=device)
        mask_buffer[:, :T] = mask
        next_position = positions[:, -1:] + 1
    keep_scores = cfg.return_dict_in_generate and cfg.output_scores
    keep_logits = cfg.return_dict_in_generate and cfg.output_logits
    all_scores: list[torch.Tensor] = []
    all_logits: list[torch.Tensor] = []
    chosen_log_probs: list[torch.Tensor] = []
    unfinished = torch.ones(N, dtype=torch.bool, device=device)
    if streamer is not None:
        streamer.put(input_ids.cpu())

    logits = model(input_ids, attention_mask=mask, position_ids=positions, cache=cache,
                   logits_to_keep=1).logits[:, -1].float()
    length = T
    for step in range(max_new):
        scores = apply_processors(request.processors, sequences[:, :length], logits)
        best = scores.max(dim=-1)  # one pass: the greedy choice (the first of equals) and the check
        _check_some_token_allowed(best.values, unfinished, step)
        if cfg.do_sample:
            probs = torch.softmax(scores, dim=-1)
            next_tokens = torch.multinomial(probs, 1, generator=request.generator).squeeze(1)
        else:
            next_tokens = best.indices  # argmax's answer, in a third of its time on CPU
        next_tokens = torch.where(unfinished, next_tokens, request.pad_token_id)
        sequences[:, length] = next_tokens
        length += 1
        if keep_scores:
            all_scores.append(scores)
        if keep_logits:
            all_logits.append(logits)
        if cfg.return_dict_in_generate:
            chosen_log_probs.append(torch.log_softmax(scores, -1).gather(1, next_tokens[:, None])[:, 0])
        if streamer is not None:
            streamer.put(next_tokens.cpu())
        finished = eos_hits(next_tokens, request.eos_ids)
        if request.stop_strings is not None:
            finished |= request.stop_strings(sequences[:, :length], T)
        unfinished &= ~finished
        if step == max_new - 1 or not bool(unfinished.any()):
            break
        follow_rows(request.processors, None, unfinished)
        logits = next_logits(model, next_tokens[:, None], cache, mask_buffer,
                             next_position if mask_buffer is not None else None)
        if mask_buffer is not None:
            next_position = next_position + 1
    if streamer is not None:
        streamer.end()
    _warn_if_default_length_cut(request, bool(unfinished.any()), length - T)
    return GenerateOutput(
        sequences=sequences[:, :length],
        scores=tuple(all_scores) if keep_scores else None,
        logits=tuple(all_logits) if keep_logits else None,
        token_log_probs=torch.stack(chosen_log_probs, 1) if chosen_log_probs else None,
    )


def _check_some_token_allowed(best_scores: torch.Tensor, unfinished: torch.Tensor, step: int) -> None:
    """Never pick a token every processor refused (argmax would return token 0 as if allowed); `best_scores`
    (N,): each row's highest score."""
    blocked = torch.isneginf(best_scores) & unfinished
    if bool(blocked.any()):
        raise GenerationError(
            f"no token is allowed for row {int(blocked.nonzero()[0, 0])} at new token {step + 1}: "
            "the constraint and min_new_tokens / no_repeat_ngram_size together exclude every token"
        )


def _warn_if_default_length_cut(request: GenerationRequest, any_unfinished: bool, generated: int) -> None:
    if request.length_is_default and any_unfinished:
        import warnings

        warnings.warn(
            f"generation stopped after {generated} new tokens, the default limit, before an "
            "end-of-sequence token; pass max_new_tokens=... for longer output",
            UserWarning,
            stacklevel=4,
        )

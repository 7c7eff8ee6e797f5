"""Layer 5: beam search and beam sampling, vectorised over batch and beams.

Each step scores every (beam, token) continuation by its accumulated log
probability, keeps the best 2*num_beams (more with several EOS ids: enough
that num_beams stay alive when some just finished), and moves finished ones
into a per-prompt pool of num_beams hypotheses ranked by
score / generated_length ** length_penalty. The bookkeeping follows
transformers' beam search step for step (candidate count, -1e9 masking,
early-stopping heuristic) so both give identical tokens on the same weights.
The KV cache rows follow their parent beams through `KVCache.reorder`, and
stateful processors (grammar matchers) through `follow_rows`. A beam scored
-inf (a constraint left fewer continuations than candidates) is dead: it is
never returned, and too few live hypotheses for num_return_sequences is an error.
"""

from __future__ import annotations

import torch

from llmos.generation.decode import GenerateOutput, _warn_if_default_length_cut, prefill_positions
from llmos.generation.decode_step import next_logits
from llmos.generation.logits_process import apply_processors, follow_rows
from llmos.generation.request import GenerationRequest
from llmos.generation.stopping import eos_hits
from llmos.generation_config import GenerationError
from llmos.model.cache import KVCache

BIG_NEGATIVE = -1.0e9


def _gather(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """tensor (B, K, ...) rows picked by index (B, K') along dim 1."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return tensor.gather(1, index.expand(*index.shape[:2], *tensor.shape[2:]))


@torch.inference_mode()
def beam_search(model, request: GenerationRequest, streamer=None) -> GenerateOutput:
    cfg = request.config
    num_beams, length_penalty, early_stopping = cfg.num_beams, cfg.length_penalty, cfg.early_stopping
    B, T = request.input_ids.shape
    device = request.input_ids.device
    max_length = T + request.max_new_tokens
    n_eos = 0 if request.eos_ids is None else request.eos_ids.numel()
    keep = max(2, 1 + n_eos) * num_beams
    top_beam_mask = torch.arange(keep, device=device) < num_beams

    input_ids = request.input_ids.repeat_interleave(num_beams, dim=0)  # (B*K, T)
    mask = request.attention_mask
    mask = mask.repeat_interleave(num_beams, dim=0) if mask is not None else None
    running = torch.full((B, num_beams, max_length), request.pad_token_id, dtype=torch.long, device=device)
    running[:, :, :T] = input_ids.view(B, num_beams, T)
    finished_seqs = running.clone()
    running_scores = torch.zeros(B, num_beams, device=device)
    running_scores[:, 1:] = BIG_NEGATIVE
    finished_scores = torch.full((B, num_beams), BIG_NEGATIVE, device=device)
    is_finished = torch.zeros(B, num_beams, dtype=torch.bool, device=device)
    may_improve = torch.ones(B, 1, dtype=torch.bool, device=device)
    running_parents = torch.full((B, num_beams, max_length - T), -1, dtype=torch.long, device=device)
    finished_parents = running_parents.clone()
    batch_offset = torch.arange(B, device=device)[:, None] * num_beams
    keep_scores = cfg.return_dict_in_generate and cfg.output_scores
    all_scores: list[torch.Tensor] = []

    cache = KVCache(model.config, B * num_beams, max_len=max_length, dtype=model.dtype, device=device)
    mask_buffer = None
    positions = prefill_positions(mask)
    if mask is not None:
        mask_buffer = torch.ones(B * num_beams, max_length, dtype=torch.long, device=device)
        mask_buffer[:, :T] = mask
        next_position = positions[:, -1:] + 1
    logits = model(input_ids, attention_mask=mask, position_ids=positions, cache=cache,
                   logits_to_keep=1).logits[:, -1].float()
    cur = T
    hits_stop = torch.zeros(B, keep, dtype=torch.bool, device=device)
    while True:
        flat_running = running[:, :, :cur].reshape(B * num_beams, cur)
        log_probs = apply_processors(request.processors, flat_running, torch.log_softmax(logits, -1))
        if keep_scores:
            all_scores.append(log_probs)
        V = log_probs.shape[-1]
        log_probs = (log_probs.view(B, num_beams, V) + running_scores[:, :, None]).view(B, num_beams * V)

        # c. the best `keep` continuations over all beams (or sampled without replacement)
        if cfg.do_sample:
            top_index = torch.multinomial(torch.softmax(log_probs, -1), keep, generator=request.generator)
            top_scores = log_probs.gather(1, top_index)
            top_scores, order = top_scores.sort(dim=-1, descending=True)
            top_index = top_index.gather(1, order)
        else:
            top_scores, top_index = torch.topk(log_probs, keep)
        parent = top_index // V
        top_seqs = _gather(running, parent)
        top_seqs[:, :, cur] = top_index % V
        top_parents = _gather(running_parents, parent)
        top_parents[:, :, cur - T] = parent + batch_offset

        # d. which candidates just ended (EOS, stop string, or the length limit)
        flat_top = top_seqs[:, :, : cur + 1].reshape(B * keep, cur + 1)
        hits = eos_hits(flat_top[:, -1], request.eos_ids)
        if request.stop_strings is not None:
            hits |= request.stop_strings(flat_top, T)
        if cur + 1 >= max_length:
            hits[:] = True
        hits_stop = hits.view(B, keep)

        # e. the best unfinished candidates keep running
        alive_scores = top_scores + hits_stop.float() * BIG_NEGATIVE
        pick = torch.topk(alive_scores, num_beams).indices
        running = _gather(top_seqs, pick)
        running_scores = _gather(alive_scores, pick)
        running_parents = _gather(top_parents, pick)

        # f. finished candidates among the top num_beams enter the pool if they beat it
        just_finished = hits_stop & top_beam_mask[None, :]
        pool_scores = top_scores / ((cur + 1 - T) ** length_penalty)
        full = is_finished.all(dim=-1, keepdim=True) & (early_stopping is True)
        pool_scores = pool_scores + full.float() * BIG_NEGATIVE
        pool_scores = pool_scores + (~may_improve).float() * BIG_NEGATIVE
        pool_scores = pool_scores + (~just_finished).float() * BIG_NEGATIVE
        merged_scores = torch.cat((finished_scores, pool_scores), dim=1)
        best = torch.topk(merged_scores, num_beams).indices
        finished_seqs = _gather(torch.cat((finished_seqs, top_seqs), 1), best)
        finished_scores = _gather(merged_scores, best)
        finished_parents = _gather(torch.cat((finished_parents, top_parents), 1), best)
        is_finished = _gather(torch.cat((is_finished, just_finished), 1), best)

        cur += 1
        # g. stop when no running beam can beat the pool, or the pool is full (early_stopping)
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = max_length - T
        else:
            best_length = cur - T
        best_running = running_scores[:, :1] / (best_length ** length_penalty)
        worst_finished = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values, BIG_NEGATIVE)
        may_improve = may_improve & (best_running > worst_finished).any(dim=-1, keepdim=True)
        done = (not bool(may_improve.any())) or (bool(is_finished.all()) and early_stopping is True)
        if done or bool(hits_stop.all()):
            break
        parents = running_parents[:, :, cur - 1 - T].reshape(-1)
        cache.reorder(parents)
        follow_rows(request.processors, parents, running_scores.reshape(-1) > float("-inf"))
        next_tokens = running[:, :, cur - 1].reshape(B * num_beams, 1)
        logits = next_logits(model, next_tokens, cache, mask_buffer,
                             next_position if mask_buffer is not None else None)
        if mask_buffer is not None:
            next_position = next_position + 1

    R = cfg.num_return_sequences
    found = (finished_parents[:, :R, 0] >= 0).sum(dim=1)  # an empty slot has no generated token
    if bool((found < R).any()):
        prompt = int((found < R).nonzero()[0, 0])
        raise GenerationError(
            f"beam search found {int(found[prompt])} hypotheses for prompt {prompt}, fewer than "
            f"num_return_sequences={R}: the constraint, min_new_tokens or the warpers leave too "
            "few continuations"
        )
    sequences = finished_seqs[:, :R].reshape(B * R, max_length)
    parents = finished_parents[:, :R].reshape(B * R, -1)
    generated = int((parents >= 0).sum(dim=1).max())
    sequences = sequences[:, : T + generated]
    if streamer is not None:
        streamer.put(request.input_ids[:1].cpu())
        streamer.put(sequences[0, T:].cpu())
        streamer.end()
    _warn_if_default_length_cut(request, generated == request.max_new_tokens and not bool(
        eos_hits(sequences[:, -1], request.eos_ids).all()), generated)
    return GenerateOutput(
        sequences=sequences,
        scores=tuple(all_scores) if keep_scores else None,
        sequences_scores=finished_scores[:, :R].reshape(-1) if cfg.return_dict_in_generate else None,
        beam_indices=parents[:, :generated] if cfg.return_dict_in_generate else None,
    )

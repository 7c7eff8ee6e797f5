"""Layer 5: fill-mask for encoders: the top-k candidates (with probabilities) for each mask token."""

from __future__ import annotations

from typing import Any

import torch

from llmos.generation_config import GenerationError
from llmos.tokenizer.from_any import as_tokenizer, special_token_id


@torch.inference_mode()
def fill_mask(model: Any, tokenizer: Any, text: str, top_k: int = 5) -> list[list[dict]]:
    """For each mask token in `text`, in order: `top_k` dicts {token_id, token, score, sequence},
    most likely first; `score` is the softmax probability and `sequence` the text with that
    candidate in place of the mask."""
    if not isinstance(top_k, int) or top_k < 1:
        raise GenerationError(f"top_k={top_k!r} is invalid; valid: an integer >= 1")
    tokenizer = as_tokenizer(tokenizer)
    mask_id = special_token_id(tokenizer, "mask")
    if mask_id is None:
        raise GenerationError("the tokenizer has no mask token ([MASK] or <mask>); fill_mask needs one")
    ids = tokenizer.encode(text)
    positions = [i for i, t in enumerate(ids) if t == mask_id]
    if not positions:
        raise GenerationError(f"no mask token (id {mask_id}) in the text {text!r}")
    was_training = model.training
    model.eval()
    try:
        input_ids = torch.tensor([ids], device=model.device)
        out = model(input_ids)  # a masked LM's `logits`, or a pretraining model's `prediction_logits`
        logits = out[0][0, positions].float()  # (M, V): the token logits come first when no labels are given
    finally:
        model.train(was_training)
    probs = logits.softmax(-1)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    results = []
    for m, pos in enumerate(positions):
        candidates = []
        for score, token_id in zip(top.values[m].tolist(), top.indices[m].tolist(), strict=True):
            filled = ids[:pos] + [token_id] + ids[pos + 1:]
            candidates.append({
                "token_id": token_id,
                "token": tokenizer.decode([token_id], skip_special_tokens=True),
                "score": score,
                "sequence": tokenizer.decode(filled, skip_special_tokens=True),
            })
        results.append(candidates)
    return results

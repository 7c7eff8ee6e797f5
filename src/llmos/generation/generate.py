"""Layer 5: `generate(model, input_ids, ...)`: the one entry point, choosing the strategy.

Parameters have Hugging Face's names and meanings (see `GenerationConfig`);
defaults come from `model.generation_config` (set by the checkpoint loader from
generation_config.json) or, failing that, the model config's special token ids.
Returns the token ids (N, prompt + new) with N = batch * num_return_sequences,
or a `GenerateOutput` with `return_dict_in_generate=True`.
"""

from __future__ import annotations

from typing import Any

import torch

from llmos.generation.beam import beam_search
from llmos.generation.constrained import (
    CONSTRAINT_KEYS,
    ConstraintError,
    GrammarProcessor,
    prompt_grammars,
)
from llmos.generation.decode import GenerateOutput, sample_loop
from llmos.generation.request import build_request, resolve_config
from llmos.generation_config import GenerationConfig, GenerationError
from llmos.tokenizer.from_any import as_tokenizer


def generate(
    model: Any,
    input_ids: torch.Tensor | list,
    attention_mask: torch.Tensor | None = None,
    generation_config: GenerationConfig | None = None,
    streamer: Any = None,
    tokenizer: Any = None,
    generator: torch.Generator | None = None,
    **kwargs: Any,
) -> torch.Tensor | GenerateOutput:
    """Continue each prompt in `input_ids` (B, T), left-padded with `attention_mask` when
    their lengths differ. `generator` (or `seed=`) makes sampling reproducible.
    `tokenizer` is any tokenizer `as_tokenizer` takes (needed for stop strings and constraints).
    `json_schema=`, `regex=`, `grammar=` (Lark) or `choices=[...]`, with `tokenizer=`, keep
    every row's new text inside that language; `constraints=[{"regex": ...}, None, ...]` gives
    each input row its own (None: free text). See `generation.constrained`."""
    if not getattr(model.config, "causal", True):
        raise GenerationError(
            "generate needs a causal (decoder) language model; for an encoder use fill_mask"
        )
    tokenizer = None if tokenizer is None else as_tokenizer(tokenizer)
    constraint = {key: kwargs.pop(key) for key in (*CONSTRAINT_KEYS, "constraints") if key in kwargs}
    config = resolve_config(model, generation_config, kwargs)
    request = build_request(model, input_ids, attention_mask, config, tokenizer, generator)
    grammars = prompt_grammars(constraint, request.input_ids.shape[0])
    if grammars is not None:
        if tokenizer is None:
            raise ConstraintError(f"{sorted(constraint)[0]}= needs tokenizer= (the grammar is matched on text)")
        copies = config.num_beams if config.num_beams > 1 else config.num_return_sequences
        rows = [grammar for grammar in grammars for _ in range(copies)]  # as the loops expand the prompts
        request.processors.insert(0, GrammarProcessor(rows, tokenizer, len(rows), request.prompt_length,
                                                      model.config.vocab_size, config.eos_token_ids))
    if streamer is not None and request.input_ids.shape[0] * config.num_return_sequences > 1:
        raise GenerationError(
            "a streamer follows one sequence; got batch size "
            f"{request.input_ids.shape[0]} x num_return_sequences {config.num_return_sequences}"
        )
    was_training = model.training
    model.eval()
    try:
        if config.num_beams > 1:
            output = beam_search(model, request, streamer)
        else:
            output = sample_loop(model, request, streamer)
    finally:
        model.train(was_training)
    return output if config.return_dict_in_generate else output.sequences

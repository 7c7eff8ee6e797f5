"""Layer 5: turn a `generate(...)` call into one checked, resolved decoding request.

Everything that can be wrong with a request is found here, before the first
forward pass: bad parameters, empty input, token ids outside the vocabulary,
a prompt that does not fit the context window. Lengths are resolved here too:
max_new_tokens wins over max_length, the default is `DEFAULT_MAX_NEW_TOKENS`,
and a request running past the context window is capped with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from llmos.generation.logits_process import LogitsProcessor, build_logits_processors
from llmos.generation.stopping import StopStringCriteria
from llmos.generation_config import DEFAULT_MAX_NEW_TOKENS, GenerationConfig, GenerationError


@dataclass
class GenerationRequest:
    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor | None  # (B, T), None when there is no padding
    config: GenerationConfig
    max_new_tokens: int
    length_is_default: bool  # True when nobody asked for this length: warn if it cuts the text
    eos_ids: torch.Tensor | None  # (n_eos,) long
    pad_token_id: int
    processors: list[LogitsProcessor]
    stop_strings: StopStringCriteria | None
    generator: torch.Generator | None

    @property
    def prompt_length(self) -> int:
        return self.input_ids.shape[1]


def resolve_config(model: Any, generation_config: GenerationConfig | None, kwargs: dict) -> GenerationConfig:
    """The model's defaults (its generation_config, else its config's special ids) + overrides."""
    base = generation_config or getattr(model, "generation_config", None)
    if base is None:
        base = GenerationConfig.from_model_config(model.config)
    elif isinstance(base, dict):
        base = GenerationConfig.from_dict(base)
    return base.replace(**kwargs) if kwargs else base


def build_request(
    model: Any,
    input_ids: torch.Tensor | list,
    attention_mask: torch.Tensor | None,
    config: GenerationConfig,
    tokenizer: Any = None,
    generator: torch.Generator | None = None,
) -> GenerationRequest:
    input_ids = _as_ids(input_ids, model)
    B, T = input_ids.shape
    vocab = model.config.vocab_size
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab:
        bad = low if low < 0 else high
        raise GenerationError(f"input_ids contain token id {bad}, outside the vocabulary [0, {vocab - 1}]")
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask, device=input_ids.device)
        if attention_mask.shape != input_ids.shape:
            raise GenerationError(
                f"attention_mask has shape {tuple(attention_mask.shape)}; it must match input_ids "
                f"{tuple(input_ids.shape)}"
            )
        if bool((attention_mask[:, -1] == 0).any()):
            raise GenerationError(
                "attention_mask has padding on the right; decoder-only generation needs left padding "
                "(tokenizer padding_side='left')"
            )
        if bool(attention_mask.all()):
            attention_mask = None
        else:
            attention_mask = attention_mask.long()
    for name in ("bos_token_id", "pad_token_id"):
        value = getattr(config, name)
        if value is not None and value >= vocab:
            raise GenerationError(f"{name}={value} is outside the vocabulary [0, {vocab - 1}]")

    max_new, is_default = _resolve_length(config, T, model.config.max_seq_len)
    eos = config.eos_token_ids
    eos_ids = torch.tensor(eos, dtype=torch.long, device=input_ids.device) if eos else None
    pad = config.pad_token_id if config.pad_token_id is not None else (eos[0] if eos else 0)
    if generator is None and config.seed is not None:
        generator = torch.Generator(device=input_ids.device).manual_seed(config.seed)
    stop = StopStringCriteria(config.stop_string_list, tokenizer) if config.stop_string_list else None
    return GenerationRequest(
        input_ids=input_ids,
        attention_mask=attention_mask,
        config=config,
        max_new_tokens=max_new,
        length_is_default=is_default,
        eos_ids=eos_ids,
        pad_token_id=pad,
        processors=build_logits_processors(config, prompt_length=T),
        stop_strings=stop,
        generator=generator,
    )


def _as_ids(input_ids: torch.Tensor | list, model: Any) -> torch.Tensor:
    if isinstance(input_ids, list):
        if not input_ids:
            raise GenerationError("input_ids is empty; give at least one prompt token")
        input_ids = torch.tensor(input_ids if isinstance(input_ids[0], list) else [input_ids])
    if not isinstance(input_ids, torch.Tensor):
        raise GenerationError(f"input_ids must be a tensor or list of token ids, got {type(input_ids).__name__}")
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if input_ids.dim() != 2 or input_ids.numel() == 0:
        raise GenerationError(
            f"input_ids has shape {tuple(input_ids.shape)}; expected (batch, length) with length >= 1"
        )
    if input_ids.dtype.is_floating_point:
        raise GenerationError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    return input_ids.long().to(model.device)


def _resolve_length(config: GenerationConfig, prompt_length: int, context: int) -> tuple[int, bool]:
    is_default = False
    if config.max_new_tokens is not None:
        max_new = config.max_new_tokens
    elif config.max_length is not None:
        max_new = config.max_length - prompt_length
        if max_new <= 0:
            warnings.warn(
                f"max_length={config.max_length} is not longer than the prompt ({prompt_length} "
                "tokens): only 1 new token will be generated. Use max_new_tokens to set the "
                "length of the continuation.",
                UserWarning,
                stacklevel=4,
            )
            max_new = 1
    else:
        max_new, is_default = DEFAULT_MAX_NEW_TOKENS, True
    if prompt_length >= context:
        from llmos.model import ContextLengthError

        raise ContextLengthError(
            f"the prompt has {prompt_length} tokens; the context window (max_seq_len={context}) "
            "leaves no room for a new token"
        )
    if prompt_length + max_new > context:
        if not is_default:
            warnings.warn(
                f"prompt ({prompt_length} tokens) + max_new_tokens ({max_new}) exceeds the context "
                f"window (max_seq_len={context}); generating at most {context - prompt_length} "
                "new tokens",
                UserWarning,
                stacklevel=4,
            )
        max_new = context - prompt_length
    return max_new, is_default

"""Layer 2: the Transformer trunk: embeddings, positions, blocks, final norm.

Heads (causal LM, masked LM + NSP, classification) sit on top of it in
`llmos.model.heads`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.model.attention import AttentionContext, build_attention_mask
from llmos.model.block import Block
from llmos.model.cache import KVCache
from llmos.model.norms import make_norm
from llmos.model.positions import RotaryEmbedding, sinusoidal_table


class ContextLengthError(LLMOSError):
    """The input is longer than the model's context window."""


class Embeddings(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.scale = config.d_model ** 0.5 if config.scale_embeddings else None
        if config.position == "learned":
            self.positions = nn.Embedding(config.max_seq_len, config.d_model)
        elif config.position == "sinusoidal":
            self.table_shape = (config.max_seq_len, config.d_model)
            self.init_buffers()
        if config.type_vocab_size:
            self.segments = nn.Embedding(config.type_vocab_size, config.d_model)
        self.norm = make_norm(config) if config.embedding_norm else None
        self.dropout = nn.Dropout(config.dropout)

    def init_buffers(self) -> None:
        """(Re)compute the sinusoid table: derived, not saved (see `RotaryEmbedding.init_buffers`)."""
        if hasattr(self, "table_shape"):
            self.register_buffer("sinusoid", sinusoidal_table(*self.table_shape), persistent=False)

    def forward(self, input_ids, position_ids, token_type_ids) -> torch.Tensor:
        x = self.tokens(input_ids)  # (B, T, C)
        if self.scale is not None:  # Gemma: sqrt(d_model), rounded to the weights' dtype as transformers does
            x = x * torch.tensor(self.scale, dtype=x.dtype)
        if hasattr(self, "positions"):
            x = x + self.positions(position_ids)
        elif hasattr(self, "sinusoid"):
            x = x + self.sinusoid[position_ids].to(x.dtype)
        if hasattr(self, "segments"):
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.segments(token_type_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = Embeddings(config)
        self.rotary = RotaryEmbedding(config) if config.position == "rope" else None
        # Sliding-window layers with their own RoPE base (Gemma 3) get their own table.
        has_local = any(config.layer_window(i) is not None for i in range(config.n_layers))
        self.has_global = any(config.layer_window(i) is None for i in range(config.n_layers))
        self.has_local = has_local
        own_rope = has_local and config.local_rope_theta is not None and config.position == "rope"
        self.local_rotary = RotaryEmbedding(config, local=True) if own_rope else None
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        use_final_norm = config.final_norm and config.norm_placement == "pre"
        self.final_norm = make_norm(config) if use_final_norm else None

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, past + T); with a cache, up to its max_len
        position_ids: torch.Tensor | None = None,  # (B, T), or (1, T) for every row
        token_type_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        cache_position: torch.Tensor | None = None,  # (T,) cache columns this pass writes
    ) -> torch.Tensor:
        """With a cache and no `cache_position` (eager callers), the pass writes after the cache's
        filled length and advances it. A compiled step passes `cache_position` itself and keeps
        its own count: nothing here then reads host-side state, so the step has one graph."""
        B, T = input_ids.shape
        ctx = self._attention_context(input_ids, attention_mask, cache, cache_position)
        if position_ids is None:
            # (1, T): one table row per position, broadcast over the batch (no B x T gather / scatter)
            position_ids = (ctx.cache_position if ctx.cache_position is not None
                            else torch.arange(T, device=input_ids.device))[None]
        x = self.embed(input_ids, position_ids, token_type_ids)
        if self.rotary is not None:
            ctx.rope = self.rotary(position_ids, x.dtype)
        if self.local_rotary is not None:
            ctx.local_rope = self.local_rotary(position_ids, x.dtype)
        for block in self.blocks:
            x = block(x, ctx)
        if cache is not None and cache_position is None:
            cache.advance(T)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x  # (B, T, C)

    def _attention_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                           cache: KVCache | None, cache_position: torch.Tensor | None) -> AttentionContext:
        """The masks of this pass: one for global layers, one (windowed) for sliding-window layers,
        each built only when some layer needs it."""
        B, T = input_ids.shape
        window, device = self.config.sliding_window, input_ids.device
        windows = [w for w, needed in ((None, self.has_global), (window, self.has_local)) if needed]
        if cache_position is not None:  # a compiled step: every column of the cache, masked
            masks = {w: (cache.attention_mask(cache_position, attention_mask, w), False) for w in windows}
            return self._context(masks, window, cache, cache_position, read_cache=True)
        past = cache.length if cache is not None else 0
        if past + T > self.config.max_seq_len:
            raise ContextLengthError(
                f"input of {past + T} tokens exceeds the context window "
                f"(max_seq_len={self.config.max_seq_len})"
            )
        position = cache.positions(T, device) if cache is not None else None
        if past == 0:  # no history: attend over this pass's own keys (causal SDPA, no cache read)
            masks = {w: build_attention_mask(attention_mask, B, 0, T, self.config.causal, w, device) for w in windows}
            return self._context(masks, window, cache, position, read_cache=False)
        masks = {w: (cache.attention_mask(position, attention_mask, w), False) for w in windows}
        return self._context(masks, window, cache, position, read_cache=True)

    @staticmethod
    def _context(masks: dict, window: int | None, cache: KVCache | None, position: torch.Tensor | None,
                 read_cache: bool) -> AttentionContext:
        mask, is_causal = masks.get(None, (None, False))
        local_mask, local_is_causal = masks.get(window, (None, False)) if window is not None else (None, False)
        return AttentionContext(None, mask, is_causal, cache, position, read_cache=read_cache,
                                local_mask=local_mask, local_is_causal=local_is_causal)


def init_weights(module: nn.Module, config: ModelConfig) -> None:
    """GPT-2 style: N(0, 0.02) everywhere, residual output projections scaled by 1/sqrt(2 n_layers)."""
    std = config.initializer_range
    for name, p in module.named_parameters():
        if p.dim() >= 2:
            scale = 1 / math.sqrt(2 * config.n_layers) if name.endswith(("attn.out.weight", "mlp.down.weight")) else 1.0
            nn.init.normal_(p, mean=0.0, std=std * scale)
        elif name.endswith("bias"):
            nn.init.zeros_(p)

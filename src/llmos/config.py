"""Layer 1: `ModelConfig`, the one description of every Transformer LLMOS builds.

GPT-2, the textbook Transformer, Llama-family decoders and BERT-style encoders
are all values of this dataclass; the model code branches on its fields, never
on a model name. Presets give named sizes. Translation to and from Hugging
Face `config.json` files lives in `llmos.checkpoint.hf`, not here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.errors import LLMOSError

POSITIONS = ("sinusoidal", "learned", "rope", "none")
NORMS = ("layernorm", "rmsnorm")
NORM_PLACEMENTS = ("pre", "post")
MLPS = ("gelu", "gelu_tanh", "swiglu", "geglu")  # geglu: gelu_tanh(gate) * up (Gemma)
# llama3 and linear as in transformers; longrope (Phi-3's "su"): short/long factors per frequency;
# frequency_factors: each frequency divided by its factor (llama.cpp's rope_freqs tensor).
ROPE_SCALINGS = (None, "llama3", "linear", "longrope", "frequency_factors")


class ConfigError(LLMOSError):
    """A configuration value is invalid; the message names it and what is valid."""


def token_id_list(value: Any, name: str = "eos_token_id") -> list[int]:
    """A token-id field as Hugging Face files store it (one id, a list or tuple of ids, or None) as a
    list of ids. The one reading of `eos_token_id` for model and generation configs and serving."""
    if value is None:
        return []
    ids = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ConfigError(f"{name}={value!r} is not valid; expected a token id, a list of them, or None")
    return ids


@dataclass
class ModelConfig:
    """Every shape and variant of the LLMOS Transformer.

    `family` records which Hugging Face family a checkpoint came from (or
    `llmos` for our own); it only matters for export, never for the math.
    """

    vocab_size: int = 50257
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    n_kv_heads: int | None = None  # None = n_heads (multi-head); fewer = grouped-query
    head_dim: int | None = None  # None = d_model // n_heads
    d_ff: int | None = None  # None = 4 * d_model
    max_seq_len: int = 1024
    causal: bool = True
    # positions
    position: str = "learned"
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None  # {"rope_type": "llama3", "factor": 8.0, ...}
    rotary_dim: int | None = None  # None = head_dim; fewer: only the first rotary_dim of each head rotate (Phi-4)
    local_rope_theta: float | None = None  # RoPE base of sliding-window layers (Gemma 3: 10k); None = rope_theta
    # norms
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    norm_bias: bool = True
    norm_placement: str = "pre"
    embedding_norm: bool = False  # BERT: LayerNorm right after the embeddings
    final_norm: bool = True  # a norm after the last block (pre-norm models)
    norm_weight_offset: float = 0.0  # RMSNorm scales by (offset + weight): Gemma stores w for (1 + w)
    sandwich_norm: bool = False  # also a norm on each sublayer's output, before the residual add (Gemma 2/3)
    # mlp
    mlp: str = "gelu_tanh"
    mlp_bias: bool = True
    # attention
    qkv_bias: bool = True
    attn_out_bias: bool = True
    sliding_window: int | None = None
    sliding_window_pattern: int | None = None  # with a window: every Nth layer is global (Gemma 3: 6); None = all local
    qk_norm: bool = False  # RMSNorm over each query and key head after projection, before RoPE (Qwen3, Gemma 3)
    attn_scale: float | None = None  # multiplier of q.k; None = 1/sqrt(head_dim) (Gemma: query_pre_attn_scalar^-0.5)
    attn_logit_softcap: float | None = None  # cap * tanh(scores / cap) before the softmax (Gemma 2)
    # embeddings and heads
    tie_embeddings: bool = True
    type_vocab_size: int = 0  # BERT segment embeddings (0 = none)
    lm_head_bias: bool = False
    scale_embeddings: bool = False  # token embeddings times sqrt(d_model) (Gemma)
    final_logit_softcap: float | None = None  # cap * tanh(logits / cap)
    mlm_transform: bool = False  # BERT's dense + act + norm before the MLM decoder
    pooler: bool = False  # BERT's dense + tanh over the first token
    num_labels: int = 2
    label_names: list[str] = field(default_factory=list)  # classifier label i's name ([] = LABEL_i)
    classifier_bias: bool = True
    dropout: float = 0.0
    initializer_range: float = 0.02
    # tokens
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    family: str = "llmos"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise ConfigError(
                    f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                    "choose n_heads dividing d_model or set head_dim"
                )
            self.head_dim = self.d_model // self.n_heads
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        self.validate()

    def validate(self) -> None:
        choices = {
            "position": POSITIONS,
            "norm": NORMS,
            "norm_placement": NORM_PLACEMENTS,
            "mlp": MLPS,
        }
        for name, valid in choices.items():
            value = getattr(self, name)
            if value not in valid:
                raise ConfigError(f"{name}={value!r} is not valid; expected one of {list(valid)}")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads} "
                "(grouped-query attention shares each key/value head among n_heads/n_kv_heads queries)"
            )
        if self.position == "rope" and self.head_dim % 2:
            raise ConfigError(f"head_dim={self.head_dim} must be even for rotary positions")
        if self.rotary_dim is not None and not (0 < self.rotary_dim <= self.head_dim and self.rotary_dim % 2 == 0):
            raise ConfigError(f"rotary_dim={self.rotary_dim} must be an even number in (0, head_dim={self.head_dim}]")
        if self.sliding_window_pattern is not None and (self.sliding_window is None or self.sliding_window_pattern < 1):
            raise ConfigError(f"sliding_window_pattern={self.sliding_window_pattern} needs a sliding_window and "
                              "must be at least 1 (every Nth layer global)")
        if self.position == "sinusoidal" and self.d_model % 2:
            raise ConfigError(f"d_model={self.d_model} must be even for sinusoidal positions")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type"))
            if kind not in ROPE_SCALINGS[1:]:
                raise ConfigError(
                    f"rope_scaling type {kind!r} is not supported; expected one of {list(ROPE_SCALINGS[1:])}"
                )
            lists = {"longrope": ("short_factor", "long_factor"), "frequency_factors": ("factors",)}.get(kind, ())
            for key in lists:
                values = self.rope_scaling.get(key)
                if not isinstance(values, (list, tuple)) or len(values) != self.rope_dim // 2:
                    raise ConfigError(f"rope_scaling {key} must list {self.rope_dim // 2} factors (one per rotary "
                                      f"frequency), got {values!r}")
            if kind == "longrope" and not self.rope_scaling.get("original_max_position_embeddings"):
                raise ConfigError("rope_scaling longrope needs original_max_position_embeddings (the pretraining "
                                  "length that picks short or long factors)")
        if self.label_names and len(self.label_names) != self.num_labels:
            raise ConfigError(
                f"label_names={self.label_names!r} names {len(self.label_names)} labels but "
                f"num_labels={self.num_labels}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1)")

    def layer_window(self, index: int) -> int | None:
        """The sliding window of layer `index`: None for a global layer."""
        if self.sliding_window is None:
            return None
        if self.sliding_window_pattern is not None and (index + 1) % self.sliding_window_pattern == 0:
            return None
        return self.sliding_window

    @property
    def rope_dim(self) -> int:
        """How many dimensions of each head rotate."""
        return self.rotary_dim or self.head_dim

    def label_name(self, index: int) -> str:
        return self.label_names[index] if self.label_names else f"LABEL_{index}"

    @property
    def eos_token_ids(self) -> list[int]:
        return token_id_list(self.eos_token_id)

    def num_parameters(self, embeddings: bool = True) -> int:
        """Parameter count from the shape alone (used for MFU and memory estimates)."""
        d, hd = self.d_model, self.head_dim
        attn = d * hd * (self.n_heads + 2 * self.n_kv_heads) + self.n_heads * hd * d
        mlp = (3 if self.mlp in ("swiglu", "geglu") else 2) * d * self.d_ff
        total = self.n_layers * (attn + mlp)
        if embeddings:
            total += self.vocab_size * d * (1 if self.tie_embeddings else 2)
            if self.position == "learned":
                total += self.max_seq_len * d
        return total

    # ---- serialization -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model_type"] = "llmos"
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = {k: v for k, v in data.items() if k != "model_type"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown ModelConfig field(s) {unknown}; valid fields are {sorted(known)}"
            )
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ModelConfig:
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


_LLAMA = dict(
    position="rope",
    norm="rmsnorm",
    norm_eps=1e-5,
    norm_bias=False,
    mlp="swiglu",
    mlp_bias=False,
    qkv_bias=False,
    attn_out_bias=False,
    tie_embeddings=False,
    family="llama",
)

PRESETS: dict[str, dict[str, Any]] = {
    "gpt2": dict(vocab_size=50257, d_model=768, n_layers=12, n_heads=12, max_seq_len=1024,
                 position="learned", mlp="gelu_tanh", family="gpt2",
                 bos_token_id=50256, eos_token_id=50256),
    "bert-base": dict(vocab_size=30522, d_model=768, n_layers=12, n_heads=12, d_ff=3072,
                      max_seq_len=512, causal=False, position="learned", norm_placement="post",
                      norm_eps=1e-12, embedding_norm=True, final_norm=False, mlp="gelu",
                      type_vocab_size=2, lm_head_bias=True, mlm_transform=True, pooler=True,
                      family="bert", pad_token_id=0),
    # Llama-shaped, about 100M parameters with grouped-query attention.
    "llama-100m": dict(vocab_size=32000, d_model=768, n_layers=10, n_heads=12, n_kv_heads=4,
                       d_ff=2048, max_seq_len=2048, rope_theta=500000.0, **_LLAMA),
    # The textbook Transformer decoder: sinusoidal positions, post-norm, exact GELU.
    "textbook": dict(vocab_size=8192, d_model=256, n_layers=4, n_heads=4, max_seq_len=512,
                     position="sinusoidal", norm_placement="post", final_norm=False, mlp="gelu"),
    # Small CPU sizes.
    "micro": dict(vocab_size=512, d_model=64, n_layers=2, n_heads=4, max_seq_len=128),
    "nano": dict(vocab_size=8192, d_model=256, n_layers=6, n_heads=8, n_kv_heads=4, d_ff=704,
                 max_seq_len=256, **_LLAMA),
}

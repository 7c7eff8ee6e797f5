"""Layer 3: a GGUF file's metadata as a `ModelConfig` and generation defaults.

llama.cpp names hyperparameters per architecture (`llama.block_count`,
`qwen2.attention.head_count_kv`, ...); each supported architecture is a few
renames onto the one ModelConfig, the same shapes as the Hugging Face families
of `hf_config`, so a GGUF model exports to transformers like any other:

- `llama`: Llama 2/3, SmolLM, Mistral-style (RoPE, RMSNorm, SwiGLU, GQA); Llama 3.1/3.2's
  RoPE scaling arrives as the `rope_freqs` tensor (each frequency's divisor), read back
  as the Llama 3 parameters it was computed from when they reproduce it;
- `qwen2`: the same with q/k/v biases; `qwen3`: no biases, per-head q/k RMSNorm;
- `gemma3`: Gemma 3's text model (see `hf_variants`): the window pattern and the local
  RoPE base are llama.cpp's (every 6th layer global, 10k) unless the file names them;
- `phi3`: fused qkv and gate/up, partial rotary (`rope.dimension_count`), LongRoPE from
  the `rope_factors_short` / `rope_factors_long` tensors and `rope.scaling.*`;
- `gpt2`: learned positions, LayerNorm, GELU, fused qkv with bias.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from llmos.checkpoint.gguf_file import GGUFError, GGUFFile
from llmos.config import ModelConfig

ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3", "phi3", "gpt2")
FAMILIES = {"gemma3": "gemma3_text"}  # the Hugging Face family a GGUF architecture exports as
CONFIG_TENSORS = ("rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight")  # read here


def _int(gguf: GGUFFile, key: str) -> int:
    return int(gguf.require(key))


def _special_ids(gguf: GGUFFile) -> dict[str, Any]:
    def get(name: str) -> int | None:
        value = gguf.get(f"tokenizer.ggml.{name}_token_id")
        return int(value) if value is not None else None

    return {"bos_token_id": get("bos"), "eos_token_id": get("eos"), "pad_token_id": get("padding")}


def _vocab_size(gguf: GGUFFile) -> int:
    tokens = gguf.get("tokenizer.ggml.tokens")
    if tokens is not None:
        return len(tokens)
    embedding = gguf.tensors.get("token_embd.weight")
    if embedding is None:
        raise GGUFError(f"{gguf.path}: no tokenizer.ggml.tokens and no token_embd.weight; cannot size the vocabulary")
    return int(embedding.shape[-1])  # ggml order: (d_model, vocab)


def _float_list(gguf: GGUFFile, name: str) -> list[float]:
    return [float(v) for v in np.asarray(gguf.tensors[name].data, dtype=np.float32).reshape(-1)]


def llama3_parameters(factors: list[float], head_dim: int, theta: float, original: int) -> dict[str, Any] | None:
    """The Llama 3 rope parameters that llama.cpp's converter turned into `factors` (rope_freqs), or None.

    The converter's factor of each frequency is 1 above the high-frequency wavelength, `factor` below
    the low one, 1 / ((1 - s) / factor + s) between, with s linear in 1 / wavelength. Its two
    coefficients give low_freq_factor and high_freq_factor for the file's original context length
    (Llama 3.x: 8192); the result is kept only if it gives back every factor."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    wavelen = 2 * math.pi / inv_freq
    values = np.asarray(factors, dtype=np.float64)
    factor = float(values.max())
    if factor <= 1.0:
        return None
    smooth = (1 / values - 1 / factor) / (1 - 1 / factor)
    between = (values > 1 + 1e-6) & (values < factor * (1 - 1e-6))
    if between.sum() < 2:
        return None
    slope, intercept = np.polyfit(1 / wavelen[between], smooth[between], 1)  # s = slope / wavelen + intercept
    low = -intercept * original / slope
    high = low + original / slope
    low, high = round(low, 4), round(high, 4)
    params = {"rope_type": "llama3", "factor": round(factor, 4), "low_freq_factor": low, "high_freq_factor": high,
              "original_max_position_embeddings": original}
    low_wavelen, high_wavelen = original / low, original / high
    s = np.clip((original / wavelen - low) / (high - low), 0, 1)
    again = np.where(wavelen < high_wavelen, 1.0, np.where(wavelen > low_wavelen, factor,
                                                           1 / ((1 - s) / factor + s)))
    return params if np.allclose(again, values, rtol=1e-5, atol=0) else None


def _rope_scaling(gguf: GGUFFile, head_dim: int, theta: float) -> dict[str, Any] | None:
    kind = gguf.get("{arch}.rope.scaling.type")
    if "rope_freqs.weight" in gguf.tensors:
        factors = _float_list(gguf, "rope_freqs.weight")
        if len(factors) != head_dim // 2:
            raise GGUFError(f"{gguf.path}: rope_freqs.weight has {len(factors)} factors; expected {head_dim // 2}")
        original = int(gguf.get("{arch}.rope.scaling.original_context_length") or 8192)
        return llama3_parameters(factors, head_dim, theta, original) or {
            "rope_type": "frequency_factors", "factors": factors}
    if "rope_factors_long.weight" in gguf.tensors:  # Phi-3's LongRoPE
        scaling = {"rope_type": "longrope", "short_factor": _float_list(gguf, "rope_factors_short.weight"),
                   "long_factor": _float_list(gguf, "rope_factors_long.weight"),
                   "original_max_position_embeddings": int(gguf.require("{arch}.rope.scaling.original_context_length"))}
        attention_factor = gguf.get("{arch}.rope.scaling.attn_factor")
        if attention_factor is not None:
            scaling["attention_factor"] = float(attention_factor)
        return scaling
    if kind in (None, "none"):
        return None
    if kind != "linear":
        raise GGUFError(f"{gguf.path}: rope scaling type {kind!r} is not supported; expected 'linear' or none")
    return {"rope_type": "linear", "factor": float(gguf.require("{arch}.rope.scaling.factor"))}


def _window_pattern(gguf: GGUFFile, n_layers: int) -> int:
    """Every how many layers one is global: `sliding_window_pattern` as a number, or as llama.cpp's newer
    list of one flag a layer (true = sliding window), or llama.cpp's Gemma 3 default, 6."""
    value = gguf.get("{arch}.attention.sliding_window_pattern")
    if value is None:
        return 6
    if not isinstance(value, (list, tuple)):
        return int(value)
    flags = [bool(v) for v in value]
    pattern = flags.index(False) + 1 if False in flags else n_layers + 1
    if flags != [(i + 1) % pattern != 0 for i in range(len(flags))]:
        raise GGUFError(f"{gguf.path}: sliding_window_pattern {flags} is not 'every Nth layer global'; "
                        "only that pattern is supported")
    return pattern


def _variant_fields(gguf: GGUFFile, arch: str, head_dim: int, n_layers: int, d_model: int,
                    heads: int) -> dict[str, Any]:
    """Fields beyond the Llama ones, for qwen3, gemma3 and phi3 (see the module docstring)."""
    if arch == "qwen3":
        return {"qk_norm": True}
    if arch == "phi3":
        rotary = gguf.get("{arch}.rope.dimension_count")
        window = gguf.get("{arch}.attention.sliding_window")
        return {"rotary_dim": int(rotary) if rotary and int(rotary) != head_dim else None,
                "sliding_window": int(window) if window else None}
    if arch != "gemma3":
        return {}
    window = gguf.get("{arch}.attention.sliding_window")
    pattern = _window_pattern(gguf, n_layers)
    # llama.cpp scales Gemma 3 27B's queries by its d_model / n_heads, every other size by head_dim.
    scalar = d_model // heads if n_layers == 62 else head_dim
    return dict(mlp="geglu", norm_weight_offset=1.0, sandwich_norm=True, qk_norm=True, scale_embeddings=True,
                attn_scale=float(scalar) ** -0.5, sliding_window=int(window) if window else None,
                sliding_window_pattern=pattern if window and pattern <= n_layers else None,
                local_rope_theta=float(gguf.get("{arch}.rope.freq_base_swa", 10_000.0)),
                final_logit_softcap=gguf.get("{arch}.final_logit_softcapping"))


def config_from_gguf(gguf: GGUFFile) -> ModelConfig:
    """The ModelConfig a GGUF file's metadata describes (raises GGUFError for what we cannot run)."""
    arch = gguf.architecture
    if arch not in ARCHITECTURES:
        raise GGUFError(
            f"{gguf.path}: architecture {arch!r} is not supported; expected one of {list(ARCHITECTURES)}"
        )
    d_model, heads = _int(gguf, "{arch}.embedding_length"), _int(gguf, "{arch}.attention.head_count")
    n_layers = _int(gguf, "{arch}.block_count")
    common = dict(
        vocab_size=_vocab_size(gguf), d_model=d_model, n_layers=n_layers,
        n_heads=heads, d_ff=_int(gguf, "{arch}.feed_forward_length"),
        max_seq_len=_int(gguf, "{arch}.context_length"),
        tie_embeddings="output.weight" not in gguf.tensors, family=FAMILIES.get(arch, arch), **_special_ids(gguf),
    )
    if arch == "gpt2":
        return ModelConfig(**common, position="learned", norm="layernorm",
                           norm_eps=float(gguf.get("{arch}.attention.layer_norm_epsilon", 1e-5)),
                           mlp="gelu_tanh", classifier_bias=False)
    head_dim = int(gguf.get("{arch}.attention.key_length") or d_model // heads)
    theta = float(gguf.get("{arch}.rope.freq_base", 10000.0))
    rotary = gguf.get("{arch}.rope.dimension_count") if arch == "phi3" else None
    fields = dict(
        **common, n_kv_heads=int(gguf.get("{arch}.attention.head_count_kv", heads)), head_dim=head_dim,
        position="rope", rope_theta=theta, rope_scaling=_rope_scaling(gguf, int(rotary or head_dim), theta),
        norm="rmsnorm", norm_eps=float(gguf.get("{arch}.attention.layer_norm_rms_epsilon", 1e-6)), norm_bias=False,
        mlp="swiglu", mlp_bias=False, qkv_bias=arch == "qwen2", attn_out_bias=False,
        classifier_bias=False,
    )
    fields.update(_variant_fields(gguf, arch, head_dim, n_layers, d_model, heads))
    return ModelConfig(**fields)


# llama.cpp's general.sampling.* keys with the same meaning as a generation_config.json field. Left out:
# penalty_repeat (llama.cpp penalises the last penalty_last_n tokens, transformers the whole text), temp <= 0
# (llama.cpp's greedy; here that is do_sample=False), and the samplers transformers has no equal for.
SAMPLING_KEYS = {"general.sampling.temp": ("temperature", float), "general.sampling.top_k": ("top_k", int),
                 "general.sampling.top_p": ("top_p", float), "general.sampling.min_p": ("min_p", float)}


def generation_defaults_from_gguf(gguf: GGUFFile) -> dict[str, Any]:
    """generation_config.json-style defaults: the special token ids and the sampling values the metadata
    names. They apply when sampling; do_sample stays off (greedy) unless a call asks for it."""
    defaults = {k: v for k, v in _special_ids(gguf).items() if v is not None}
    for key, (name, kind) in SAMPLING_KEYS.items():
        value = gguf.get(key)
        if value is not None and not (name == "temperature" and float(value) <= 0):
            defaults[name] = round(kind(value), 6) if kind is float else kind(value)  # float32 in the file
    return defaults

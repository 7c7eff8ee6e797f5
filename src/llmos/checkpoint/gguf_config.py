"""Layer 3: a GGUF file's metadata as a `ModelConfig` and generation defaults.

llama.cpp names hyperparameters per architecture (`llama.block_count`,
`qwen2.attention.head_count_kv`, ...); each supported architecture is a few
renames onto the one ModelConfig, the same shapes as the Hugging Face families
of `hf_config`, so a GGUF model exports to transformers like any other:

- `llama`: Llama 2/3, SmolLM, Mistral-style (RoPE, RMSNorm, SwiGLU, GQA);
- `qwen2`: the same with q/k/v biases;
- `gpt2`: learned positions, LayerNorm, GELU, fused qkv with bias.
"""

from __future__ import annotations

from typing import Any

from llmos.checkpoint.gguf_file import GGUFError, GGUFFile
from llmos.config import ModelConfig

ARCHITECTURES = ("llama", "qwen2", "gpt2")


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


def _rope_scaling(gguf: GGUFFile) -> dict[str, Any] | None:
    kind = gguf.get("{arch}.rope.scaling.type")
    if kind in (None, "none"):
        return None
    if kind != "linear":
        raise GGUFError(f"{gguf.path}: rope scaling type {kind!r} is not supported; expected 'linear' or none")
    return {"rope_type": "linear", "factor": float(gguf.require("{arch}.rope.scaling.factor"))}


def config_from_gguf(gguf: GGUFFile) -> ModelConfig:
    """The ModelConfig a GGUF file's metadata describes (raises GGUFError for what we cannot run)."""
    arch = gguf.architecture
    if arch not in ARCHITECTURES:
        raise GGUFError(
            f"{gguf.path}: architecture {arch!r} is not supported; expected one of {list(ARCHITECTURES)}"
        )
    if "rope_freqs.weight" in gguf.tensors:
        raise GGUFError(f"{gguf.path}: per-frequency RoPE factors (rope_freqs.weight, Llama 3.1-style "
                        "scaling) are not supported yet")
    d_model, heads = _int(gguf, "{arch}.embedding_length"), _int(gguf, "{arch}.attention.head_count")
    common = dict(
        vocab_size=_vocab_size(gguf), d_model=d_model, n_layers=_int(gguf, "{arch}.block_count"),
        n_heads=heads, d_ff=_int(gguf, "{arch}.feed_forward_length"),
        max_seq_len=_int(gguf, "{arch}.context_length"),
        tie_embeddings="output.weight" not in gguf.tensors, family=arch, **_special_ids(gguf),
    )
    if arch == "gpt2":
        return ModelConfig(**common, position="learned", norm="layernorm",
                           norm_eps=float(gguf.get("{arch}.attention.layer_norm_epsilon", 1e-5)),
                           mlp="gelu_tanh", classifier_bias=False)
    head_dim = gguf.get("{arch}.attention.key_length") or d_model // heads
    return ModelConfig(
        **common, n_kv_heads=int(gguf.get("{arch}.attention.head_count_kv", heads)), head_dim=int(head_dim),
        position="rope", rope_theta=float(gguf.get("{arch}.rope.freq_base", 10000.0)),
        rope_scaling=_rope_scaling(gguf), norm="rmsnorm",
        norm_eps=float(gguf.get("{arch}.attention.layer_norm_rms_epsilon", 1e-6)), norm_bias=False,
        mlp="swiglu", mlp_bias=False, qkv_bias=arch == "qwen2", attn_out_bias=False,
        classifier_bias=False,
    )


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

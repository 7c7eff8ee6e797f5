"""Layer 3: the config fields of the newer decoder families (Qwen3, Gemma 3, Phi-3), both ways.

Each is the Llama shape plus a few options of the one Transformer, so
`hf_config` reads the common fields and asks here for the rest:

- qwen3: per-head RMSNorm of queries and keys (`qk_norm`), no biases;
- gemma3_text: GeGLU (tanh), RMSNorm as (1 + w) with four norms a block, q/k
  norm, embeddings times sqrt(d_model), the query scale
  `query_pre_attn_scalar^-0.5`, local sliding-window layers with their own RoPE
  base and every Nth layer global (`layer_types`), an optional final logit cap;
- phi3 (Phi-3, Phi-3.5, Phi-4-mini): fused qkv and gate_up (our own layout),
  LongRoPE ("su"/"longrope": short and long factors), partial rotary
  (`partial_rotary_factor`), a sliding window.
"""

from __future__ import annotations

from typing import Any

from llmos.config import ModelConfig

VARIANT_FAMILIES = ("qwen3", "gemma3_text", "phi3")
_GEMMA_ACTIVATIONS = ("gelu_pytorch_tanh", "gelu_tanh")


def _window_pattern(hf: dict[str, Any], n_layers: int, error) -> tuple[int | None, int | None]:
    """(sliding_window, sliding_window_pattern) from Gemma 3's `layer_types` (or its older pattern int)."""
    window = hf.get("sliding_window")
    types = hf.get("layer_types")
    if not types:
        pattern = int(hf.get("sliding_window_pattern") or hf.get("_sliding_window_pattern") or 6)
        types = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(n_layers)]
    if window is None or "sliding_attention" not in types:
        return None, None
    if "full_attention" not in types:
        return window, None
    pattern = types.index("full_attention") + 1
    expected = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(len(types))]
    if list(types) != expected:
        raise error(f"gemma3 layer_types {types} are not 'every Nth layer global'; only that pattern is supported")
    return window, pattern


def _gemma_rope(hf: dict[str, Any]) -> tuple[float, float, dict[str, Any] | None]:
    """(global theta, local theta, global scaling) from rope_parameters per layer type, or the older fields."""
    params = hf.get("rope_parameters") or {}
    full = dict(params.get("full_attention") or {})
    local = dict(params.get("sliding_attention") or {})
    theta = float(full.pop("rope_theta", hf.get("rope_theta", 1_000_000.0)))
    local_theta = float(local.get("rope_theta", hf.get("rope_local_base_freq", 10_000.0)))
    scaling = full or hf.get("rope_scaling") or None
    if scaling and scaling.get("rope_type", scaling.get("type")) == "default":
        scaling = None
    return theta, local_theta, (dict(scaling) if scaling else None)


def variant_fields(hf: dict[str, Any], kind: str, head_dim: int, error) -> dict[str, Any]:
    """ModelConfig fields of `kind` beyond the Llama ones (`error`: the exception type to raise)."""
    if kind == "qwen3":
        if hf.get("use_sliding_window"):
            raise error("qwen3 use_sliding_window=true is not supported (per-layer windows)")
        return {"qk_norm": True}
    if kind == "gemma3_text":
        act = hf.get("hidden_activation") or hf.get("hidden_act") or "gelu_pytorch_tanh"
        if act not in _GEMMA_ACTIVATIONS:
            raise error(f"gemma3 hidden_activation={act!r} is not supported; expected one of {list(_GEMMA_ACTIVATIONS)}")
        if hf.get("use_bidirectional_attention"):
            raise error("gemma3 use_bidirectional_attention=true is not supported (a causal LM only)")
        window, pattern = _window_pattern(hf, hf["num_hidden_layers"], error)
        theta, local_theta, scaling = _gemma_rope(hf)
        return dict(mlp="geglu", norm_weight_offset=1.0, sandwich_norm=True, qk_norm=True, scale_embeddings=True,
                    attn_scale=float(hf.get("query_pre_attn_scalar", head_dim)) ** -0.5,
                    sliding_window=window, sliding_window_pattern=pattern, rope_theta=theta,
                    local_rope_theta=local_theta, rope_scaling=scaling,
                    # attn_logit_softcapping is a field of Gemma3TextConfig that transformers' Gemma 3
                    # never applies (its attention passes no softcap): the oracle runs without it.
                    final_logit_softcap=hf.get("final_logit_softcapping"),
                    tie_embeddings=bool(hf.get("tie_word_embeddings", True)))
    # phi3
    params = dict(hf.get("rope_parameters") or {})
    factor = float(params.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0)))
    fields: dict[str, Any] = {"sliding_window": hf.get("sliding_window")}
    if factor != 1.0:
        fields["rotary_dim"] = int(head_dim * factor)
    return fields


def phi3_rope_scaling(scaling: dict[str, Any] | None, hf: dict[str, Any]) -> dict[str, Any] | None:
    """Phi-3's rope scaling as ours: "su" and "yarn" are transformers' old names of longrope; the pretraining
    length travels inside it."""
    if not scaling:
        return None
    scaling = {k: v for k, v in scaling.items() if k not in ("partial_rotary_factor", "type")}
    kind = scaling.get("rope_type")
    if kind in (None, "su", "yarn", "longrope"):
        scaling["rope_type"] = "longrope"
        scaling.setdefault("original_max_position_embeddings",
                           hf.get("original_max_position_embeddings", hf.get("max_position_embeddings")))
    return scaling


def variant_to_hf(config: ModelConfig, family: str, out: dict[str, Any], require) -> None:
    """Add `family`'s own config.json fields to `out` (the Llama-like ones already there)."""
    if family == "qwen3":
        require(config, family, qk_norm=True, norm_weight_offset=0.0, sandwich_norm=False, mlp="swiglu",
                qkv_bias=config.attn_out_bias, mlp_bias=False, sliding_window=None, rotary_dim=None,
                scale_embeddings=False, attn_scale=None, attn_logit_softcap=None, final_logit_softcap=None)
        out.update(attention_bias=config.qkv_bias, use_sliding_window=False, sliding_window=None,
                   layer_types=["full_attention"] * config.n_layers)
        return
    if family == "phi3":
        require(config, family, qk_norm=False, norm_weight_offset=0.0, sandwich_norm=False, mlp="swiglu",
                qkv_bias=False, attn_out_bias=False, mlp_bias=False, sliding_window_pattern=None,
                scale_embeddings=False, attn_scale=None, attn_logit_softcap=None, final_logit_softcap=None)
        rope = dict(out["rope_parameters"])
        rope["partial_rotary_factor"] = config.rope_dim / config.head_dim
        if rope.get("rope_type") == "longrope":
            out["original_max_position_embeddings"] = rope["original_max_position_embeddings"]
        out.update(rope_parameters=rope, partial_rotary_factor=config.rope_dim / config.head_dim,
                   sliding_window=config.sliding_window)
        return
    # gemma3_text
    require(config, family, qk_norm=True, norm_weight_offset=1.0, sandwich_norm=True, mlp="geglu",
            scale_embeddings=True, mlp_bias=False, qkv_bias=config.attn_out_bias, rotary_dim=None,
            attn_logit_softcap=None)
    layer_types = ["sliding_attention" if config.layer_window(i) else "full_attention" for i in range(config.n_layers)]
    full = dict(out["rope_parameters"])
    out.pop("hidden_act", None)
    out.update(hidden_activation="gelu_pytorch_tanh", attention_bias=config.qkv_bias,
               query_pre_attn_scalar=_number(round((config.attn_scale or config.head_dim ** -0.5) ** -2, 6)),
               sliding_window=config.sliding_window, layer_types=layer_types,
               rope_parameters={"full_attention": full, "sliding_attention": {
                   "rope_type": "default", "rope_theta": config.local_rope_theta or config.rope_theta}},
               final_logit_softcapping=config.final_logit_softcap)
    out.pop("rope_theta", None)


def _number(value: float) -> int | float:
    """An integral value as an int (transformers' strict configs want int query_pre_attn_scalar)."""
    return int(value) if float(value).is_integer() else value

"""Layer 3: translate Hugging Face `config.json` dicts to `ModelConfig` and back.

One function per direction; each family (gpt2, llama, qwen2, mistral, bert,
and the newer decoders of `hf_variants`: qwen3, gemma3_text, phi3) is a
handful of field renames. Export checks that our config has an HF equivalent
and names the first field that does not.
"""

from __future__ import annotations

from typing import Any

from llmos.checkpoint.hf_variants import (
    VARIANT_FAMILIES,
    phi3_rope_scaling,
    variant_fields,
    variant_to_hf,
)
from llmos.config import ModelConfig
from llmos.errors import LLMOSError

HF_FAMILIES = ("gpt2", "llama", "qwen2", "qwen3", "mistral", "gemma3_text", "phi3", "bert")
LLAMA_LIKE = ("llama", "qwen2", "mistral", *VARIANT_FAMILIES)

# Our head class name -> HF architecture per family.
ARCHITECTURES: dict[str, dict[str, str]] = {
    "gpt2": {"CausalLM": "GPT2LMHeadModel", "SequenceClassifier": "GPT2ForSequenceClassification"},
    "llama": {"CausalLM": "LlamaForCausalLM", "SequenceClassifier": "LlamaForSequenceClassification"},
    "qwen2": {"CausalLM": "Qwen2ForCausalLM", "SequenceClassifier": "Qwen2ForSequenceClassification"},
    "mistral": {"CausalLM": "MistralForCausalLM", "SequenceClassifier": "MistralForSequenceClassification"},
    "qwen3": {"CausalLM": "Qwen3ForCausalLM", "SequenceClassifier": "Qwen3ForSequenceClassification"},
    "gemma3_text": {"CausalLM": "Gemma3ForCausalLM", "SequenceClassifier": "Gemma3TextForSequenceClassification"},
    "phi3": {"CausalLM": "Phi3ForCausalLM", "SequenceClassifier": "Phi3ForSequenceClassification"},
    "bert": {
        "MaskedLM": "BertForMaskedLM",
        "PreTrainingModel": "BertForPreTraining",
        "SequenceClassifier": "BertForSequenceClassification",
    },
}


class HFConversionError(LLMOSError):
    """A Hugging Face config or checkpoint has no LLMOS equivalent, or the other way round."""


def _num_labels(hf: dict[str, Any]) -> int:
    if isinstance(hf.get("id2label"), dict):
        return len(hf["id2label"])
    return int(hf.get("num_labels", 2))


def _label_names(hf: dict[str, Any]) -> list[str]:
    """Names from id2label, unless they are only transformers' LABEL_i defaults."""
    id2label = hf.get("id2label")
    if not isinstance(id2label, dict):
        return []
    names = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]
    return [] if names == [f"LABEL_{i}" for i in range(len(names))] else names


def _tokens(hf: dict[str, Any]) -> dict[str, Any]:
    return {k: hf.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}


def _rope(hf: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    params = dict(hf.get("rope_parameters") or {})
    scaling = hf.get("rope_scaling")
    theta = float(params.pop("rope_theta", hf.get("rope_theta", 10000.0)))
    if not scaling and params.get("rope_type", params.get("type", "default")) != "default":
        scaling = params
    if scaling and scaling.get("rope_type", scaling.get("type")) == "default":
        scaling = None
    return theta, (dict(scaling) if scaling else None)


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """ModelConfig for an HF config dict of a supported model_type."""
    kind = hf.get("model_type")
    if kind == "gemma3" and isinstance(hf.get("text_config"), dict):  # Gemma 3 4B+: the text part of it
        hf = {**hf["text_config"], "model_type": "gemma3_text"}
        kind = "gemma3_text"
    if kind not in HF_FAMILIES:
        raise HFConversionError(
            f"model_type {kind!r} in config.json is not supported; expected 'llmos' or one of {list(HF_FAMILIES)}"
        )
    if kind == "gpt2":
        act = hf.get("activation_function", "gelu_new")
        if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu"):
            raise HFConversionError(f"gpt2 activation_function={act!r} is not supported; expected gelu_new or gelu")
        if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("scale_attn_weights") is False:
            raise HFConversionError("gpt2 attention scaling variants (scale_attn_by_inverse_layer_idx, "
                                    "scale_attn_weights=false) are not supported")
        d = hf.get("n_embd", 768)
        return ModelConfig(
            vocab_size=hf.get("vocab_size", 50257), d_model=d, n_layers=hf.get("n_layer", 12),
            n_heads=hf.get("n_head", 12), d_ff=hf.get("n_inner") or 4 * d,
            max_seq_len=hf.get("n_positions", 1024), position="learned", norm="layernorm",
            norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            mlp="gelu" if act == "gelu" else "gelu_tanh",
            tie_embeddings=hf.get("tie_word_embeddings", True), classifier_bias=False,
            num_labels=_num_labels(hf), label_names=_label_names(hf), initializer_range=hf.get("initializer_range", 0.02),
            family="gpt2", **_tokens(hf),
        )
    if kind == "bert":
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise HFConversionError(
                f"bert position_embedding_type={hf['position_embedding_type']!r} is not supported; expected 'absolute'"
            )
        act = hf.get("hidden_act", "gelu")
        if act != "gelu":
            raise HFConversionError(f"bert hidden_act={act!r} is not supported; expected 'gelu'")
        return ModelConfig(
            vocab_size=hf["vocab_size"], d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
            n_heads=hf["num_attention_heads"], d_ff=hf["intermediate_size"],
            max_seq_len=hf.get("max_position_embeddings", 512), causal=False, position="learned",
            norm="layernorm", norm_eps=hf.get("layer_norm_eps", 1e-12), norm_placement="post",
            embedding_norm=True, final_norm=False, mlp="gelu",
            type_vocab_size=hf.get("type_vocab_size", 2), lm_head_bias=True, mlm_transform=True,
            pooler=True, tie_embeddings=hf.get("tie_word_embeddings", True),
            num_labels=_num_labels(hf), label_names=_label_names(hf), initializer_range=hf.get("initializer_range", 0.02),
            family="bert", **_tokens(hf),
        )
    # llama-like
    if kind != "gemma3_text" and hf.get("hidden_act", "silu") != "silu":
        raise HFConversionError(f"{kind} hidden_act={hf['hidden_act']!r} is not supported; expected 'silu'")
    if kind == "qwen2" and hf.get("use_sliding_window"):
        raise HFConversionError("qwen2 use_sliding_window=true is not supported (per-layer windows)")
    theta, scaling = _rope(hf)
    if kind == "phi3":
        scaling = phi3_rope_scaling(scaling, hf)
    heads = hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or hf["hidden_size"] // heads
    bias = bool(hf.get("attention_bias", False))
    fields = dict(
        vocab_size=hf["vocab_size"], d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
        n_heads=heads, n_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=head_dim, d_ff=hf["intermediate_size"],
        max_seq_len=hf.get("max_position_embeddings", 2048), position="rope", rope_theta=theta,
        rope_scaling=scaling, norm="rmsnorm", norm_eps=hf.get("rms_norm_eps", 1e-6), norm_bias=False,
        mlp="swiglu", mlp_bias=bool(hf.get("mlp_bias", False)),
        qkv_bias=True if kind == "qwen2" else bias, attn_out_bias=False if kind == "qwen2" else bias,
        sliding_window=hf.get("sliding_window") if kind == "mistral" else None,
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)), classifier_bias=False,
        num_labels=_num_labels(hf), label_names=_label_names(hf), initializer_range=hf.get("initializer_range", 0.02),
        family=kind, **_tokens(hf),
    )
    if kind in VARIANT_FAMILIES:
        fields.update(variant_fields(hf, kind, head_dim, HFConversionError))
    return ModelConfig(**fields)


def _require(config: ModelConfig, family: str, **wanted: Any) -> None:
    for name, value in wanted.items():
        actual = getattr(config, name)
        ok = actual in value if isinstance(value, tuple) else actual == value
        if not ok:
            raise HFConversionError(
                f"{name}={actual!r} has no Hugging Face equivalent in the {family} family "
                f"(it needs {name}={value!r}); this model cannot be exported to transformers"
            )


def choose_family(config: ModelConfig) -> str:
    """The HF family this config exports as: its own family, or inferred from its shape."""
    if config.family in HF_FAMILIES:
        return config.family
    if config.position in ("sinusoidal", "none"):
        raise HFConversionError(
            f"position={config.position!r} has no Hugging Face equivalent; "
            "export supports learned (gpt2, bert) or rope (llama, qwen2, mistral) positions"
        )
    if not config.causal:
        return "bert"
    if config.position == "learned":
        return "gpt2"
    if config.sandwich_norm:
        return "gemma3_text"
    if config.qk_norm:
        return "qwen3"
    if config.rotary_dim is not None or (config.rope_scaling or {}).get("rope_type") == "longrope":
        return "phi3"
    if config.sliding_window is not None:
        return "mistral"
    if config.qkv_bias and not config.attn_out_bias:
        return "qwen2"
    return "llama"


def config_to_hf(config: ModelConfig, head: str) -> dict[str, Any]:
    """An HF config.json dict for `config` with the architecture of our `head` class."""
    family = choose_family(config)
    arch = ARCHITECTURES[family].get(head)
    if arch is None:
        raise HFConversionError(
            f"head {head!r} has no Hugging Face class in the {family} family; "
            f"expected one of {sorted(ARCHITECTURES[family])}"
        )
    common: dict[str, Any] = {
        "architectures": [arch], "model_type": family, "vocab_size": config.vocab_size,
        "initializer_range": config.initializer_range, "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
    }
    if head == "SequenceClassifier":
        common["id2label"] = {str(i): config.label_name(i) for i in range(config.num_labels)}
        common["label2id"] = {config.label_name(i): i for i in range(config.num_labels)}
    if family == "gpt2":
        _require(config, family, causal=True, position="learned", norm="layernorm", norm_bias=True,
                 norm_placement="pre", final_norm=True, embedding_norm=False,
                 mlp=("gelu", "gelu_tanh"), mlp_bias=True, qkv_bias=True, attn_out_bias=True,
                 n_kv_heads=config.n_heads, head_dim=config.d_model // config.n_heads,
                 sliding_window=None, type_vocab_size=0, lm_head_bias=False)
        if head == "SequenceClassifier":
            _require(config, family, classifier_bias=False)
        return {**common, "n_embd": config.d_model, "n_layer": config.n_layers,
                "n_head": config.n_heads, "n_inner": config.d_ff, "n_positions": config.max_seq_len,
                "layer_norm_epsilon": config.norm_eps,
                "activation_function": "gelu" if config.mlp == "gelu" else "gelu_new",
                "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    if family == "bert":
        _require(config, family, causal=False, position="learned", norm="layernorm", norm_bias=True,
                 norm_placement="post", embedding_norm=True, mlp="gelu", mlp_bias=True,
                 qkv_bias=True, attn_out_bias=True, n_kv_heads=config.n_heads,
                 head_dim=config.d_model // config.n_heads, sliding_window=None)
        if config.type_vocab_size < 1:
            raise HFConversionError("type_vocab_size=0 has no Hugging Face equivalent in the bert "
                                    "family (BERT always has token type embeddings)")
        if head in ("MaskedLM", "PreTrainingModel"):
            _require(config, family, mlm_transform=True)
        if head == "SequenceClassifier":
            _require(config, family, pooler=True, classifier_bias=True)
        return {**common, "hidden_size": config.d_model, "num_hidden_layers": config.n_layers,
                "num_attention_heads": config.n_heads, "intermediate_size": config.d_ff,
                "max_position_embeddings": config.max_seq_len, "type_vocab_size": config.type_vocab_size,
                "layer_norm_eps": config.norm_eps, "hidden_act": "gelu",
                "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    _require(config, family, causal=True, position="rope", norm="rmsnorm", norm_placement="pre",
             final_norm=True, embedding_norm=False, type_vocab_size=0, lm_head_bias=False)
    if family != "gemma3_text":
        _require(config, family, mlp="swiglu")
    if head == "SequenceClassifier":
        _require(config, family, classifier_bias=False)
    if family not in ("gemma3_text", "phi3"):
        _require(config, family, rotary_dim=None)
    if family not in ("qwen3", "gemma3_text"):
        _require(config, family, qk_norm=False, norm_weight_offset=0.0, sandwich_norm=False,
                 scale_embeddings=False, attn_scale=None, attn_logit_softcap=None, final_logit_softcap=None)
    if family in ("llama", "qwen2", "mistral"):
        _require(config, family, sliding_window_pattern=None, local_rope_theta=None)
    if family in VARIANT_FAMILIES:
        pass
    elif family == "llama":
        _require(config, family, qkv_bias=config.attn_out_bias, sliding_window=None)
    elif family == "qwen2":
        _require(config, family, qkv_bias=True, attn_out_bias=False, mlp_bias=False, sliding_window=None)
    else:
        _require(config, family, qkv_bias=False, attn_out_bias=False, mlp_bias=False)
    rope: dict[str, Any] = {"rope_type": "default"}
    if config.rope_scaling:
        rope = dict(config.rope_scaling)
        rope["rope_type"] = rope.pop("type", rope.get("rope_type"))
        if rope["rope_type"] == "frequency_factors":
            raise HFConversionError("rope_scaling frequency_factors (a GGUF file's rope_freqs that match no Llama 3 "
                                    "parameters) has no Hugging Face equivalent; this model cannot be exported")
    rope["rope_theta"] = config.rope_theta
    out = {**common, "hidden_size": config.d_model, "num_hidden_layers": config.n_layers,
           "num_attention_heads": config.n_heads, "num_key_value_heads": config.n_kv_heads,
           "head_dim": config.head_dim, "intermediate_size": config.d_ff,
           "max_position_embeddings": config.max_seq_len, "rms_norm_eps": config.norm_eps,
           "hidden_act": "silu", "rope_parameters": rope, "rope_theta": config.rope_theta,
           "attention_dropout": 0.0}
    if family == "llama":
        out.update(attention_bias=config.qkv_bias, mlp_bias=config.mlp_bias)
    if family == "mistral":
        out["sliding_window"] = config.sliding_window
    if family == "qwen2":
        out.update(use_sliding_window=False, sliding_window=None)
    if family in VARIANT_FAMILIES:
        variant_to_hf(config, family, out, _require)
    return out

"""Layer 3: the per-family name maps between Hugging Face tensor names and ours.

Each rule pairs an HF name pattern with one of our parameter names. Our model
fuses q, k, v into `attn.qkv` (rows [q; k; v]) and SwiGLU gate/up into
`mlp.up` (rows [gate; up]), so some rules name a *part* of a fused tensor;
GPT-2's Conv1D weights are stored (in, out) and are transposed. The same rules
run both ways: import (HF -> ours, concatenating parts) and export (ours ->
HF, splitting them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from llmos.checkpoint.hf_config import HFConversionError
from llmos.config import ModelConfig

B = "transformer.blocks.{i}."


@dataclass(frozen=True)
class Rule:
    hf: str  # pattern, {i} = layer index, {p} = weight|bias
    ours: str
    part: int = 0  # index within a fused tensor
    parts: str = ""  # "" (whole), "qkv" or "gate_up"
    transpose: bool = False

    def regex(self, side: str) -> re.Pattern[str]:
        text = re.escape(self.hf if side == "hf" else self.ours)
        text = text.replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
        return re.compile(text + "$")


def _linear(hf: str, ours: str, **kw) -> Rule:
    return Rule(hf + ".{p}", ours + ".{p}", **kw)


LLAMA_RULES = [
    Rule("embed_tokens.weight", "transformer.embed.tokens.weight"),
    Rule("layers.{i}.input_layernorm.weight", B + "attn_norm.weight"),
    _linear("layers.{i}.self_attn.q_proj", B + "attn.qkv", part=0, parts="qkv"),
    _linear("layers.{i}.self_attn.k_proj", B + "attn.qkv", part=1, parts="qkv"),
    _linear("layers.{i}.self_attn.v_proj", B + "attn.qkv", part=2, parts="qkv"),
    _linear("layers.{i}.self_attn.o_proj", B + "attn.out"),
    Rule("layers.{i}.post_attention_layernorm.weight", B + "mlp_norm.weight"),
    _linear("layers.{i}.mlp.gate_proj", B + "mlp.up", part=0, parts="gate_up"),
    _linear("layers.{i}.mlp.up_proj", B + "mlp.up", part=1, parts="gate_up"),
    _linear("layers.{i}.mlp.down_proj", B + "mlp.down"),
    Rule("norm.weight", "transformer.final_norm.weight"),
]

_QK_NORM = [
    Rule("layers.{i}.self_attn.q_norm.weight", B + "attn.q_norm.weight"),
    Rule("layers.{i}.self_attn.k_norm.weight", B + "attn.k_norm.weight"),
]
QWEN3_RULES = LLAMA_RULES + _QK_NORM

# Gemma 3 names its four norms by place: its post_attention_layernorm is the attention output's norm.
GEMMA3_RULES = [
    *(r for r in LLAMA_RULES if "layernorm" not in r.hf),
    Rule("layers.{i}.input_layernorm.weight", B + "attn_norm.weight"),
    Rule("layers.{i}.post_attention_layernorm.weight", B + "attn_out_norm.weight"),
    Rule("layers.{i}.pre_feedforward_layernorm.weight", B + "mlp_norm.weight"),
    Rule("layers.{i}.post_feedforward_layernorm.weight", B + "mlp_out_norm.weight"),
    *_QK_NORM,
]

# Phi-3 stores q/k/v and gate/up fused already, in our row order.
PHI3_RULES = [
    Rule("embed_tokens.weight", "transformer.embed.tokens.weight"),
    Rule("layers.{i}.input_layernorm.weight", B + "attn_norm.weight"),
    _linear("layers.{i}.self_attn.qkv_proj", B + "attn.qkv"),
    _linear("layers.{i}.self_attn.o_proj", B + "attn.out"),
    Rule("layers.{i}.post_attention_layernorm.weight", B + "mlp_norm.weight"),
    _linear("layers.{i}.mlp.gate_up_proj", B + "mlp.up"),
    _linear("layers.{i}.mlp.down_proj", B + "mlp.down"),
    Rule("norm.weight", "transformer.final_norm.weight"),
]

GPT2_RULES = [
    Rule("wte.weight", "transformer.embed.tokens.weight"),
    Rule("wpe.weight", "transformer.embed.positions.weight"),
    _linear("h.{i}.ln_1", B + "attn_norm"),
    Rule("h.{i}.attn.c_attn.weight", B + "attn.qkv.weight", transpose=True),
    Rule("h.{i}.attn.c_attn.bias", B + "attn.qkv.bias"),
    Rule("h.{i}.attn.c_proj.weight", B + "attn.out.weight", transpose=True),
    Rule("h.{i}.attn.c_proj.bias", B + "attn.out.bias"),
    _linear("h.{i}.ln_2", B + "mlp_norm"),
    Rule("h.{i}.mlp.c_fc.weight", B + "mlp.up.weight", transpose=True),
    Rule("h.{i}.mlp.c_fc.bias", B + "mlp.up.bias"),
    Rule("h.{i}.mlp.c_proj.weight", B + "mlp.down.weight", transpose=True),
    Rule("h.{i}.mlp.c_proj.bias", B + "mlp.down.bias"),
    _linear("ln_f", "transformer.final_norm"),
]

_L = "encoder.layer.{i}."
BERT_RULES = [
    Rule("embeddings.word_embeddings.weight", "transformer.embed.tokens.weight"),
    Rule("embeddings.position_embeddings.weight", "transformer.embed.positions.weight"),
    Rule("embeddings.token_type_embeddings.weight", "transformer.embed.segments.weight"),
    _linear("embeddings.LayerNorm", "transformer.embed.norm"),
    _linear(_L + "attention.self.query", B + "attn.qkv", part=0, parts="qkv"),
    _linear(_L + "attention.self.key", B + "attn.qkv", part=1, parts="qkv"),
    _linear(_L + "attention.self.value", B + "attn.qkv", part=2, parts="qkv"),
    _linear(_L + "attention.output.dense", B + "attn.out"),
    _linear(_L + "attention.output.LayerNorm", B + "attn_norm"),
    _linear(_L + "intermediate.dense", B + "mlp.up"),
    _linear(_L + "output.dense", B + "mlp.down"),
    _linear(_L + "output.LayerNorm", B + "mlp_norm"),
    _linear("pooler.dense", "pooler.dense"),
]

# Head tensors live outside the HF base model prefix.
HEAD_RULES = {
    "gpt2": [Rule("lm_head.weight", "lm_head.weight"), Rule("score.weight", "classifier.weight")],
    "llama": [Rule("lm_head.weight", "lm_head.weight"), Rule("score.weight", "classifier.weight")],
    "bert": [
        _linear("cls.predictions.transform.dense", "mlm.dense"),
        _linear("cls.predictions.transform.LayerNorm", "mlm.norm"),
        Rule("cls.predictions.decoder.weight", "mlm.decoder.weight"),
        Rule("cls.predictions.bias", "mlm.decoder.bias"),
        _linear("cls.seq_relationship", "nsp"),
        _linear("classifier", "classifier"),
    ],
}
PREFIX = {"gpt2": "transformer.", "bert": "bert."}  # every other family: "model."
IGNORED = re.compile(r"(rotary_emb\.inv_freq|(^|\.)attn\.(masked_)?bias|embeddings\.position_ids|"
                     r"cls\.predictions\.decoder\.bias)$"
                     r"|^(model\.)?(vision_tower|multi_modal_projector)\.")  # Gemma 3 4B+: the image side
# Gemma 3 4B+ (Gemma3ForConditionalGeneration) keeps its text model under another prefix.
MULTIMODAL_PREFIXES = (("language_model.model.", "model."), ("model.language_model.", "model."),
                       ("language_model.lm_head.", "lm_head."))


def _rules(family: str) -> tuple[list[Rule], list[Rule]]:
    trunk = {"gpt2": GPT2_RULES, "bert": BERT_RULES, "qwen3": QWEN3_RULES, "gemma3_text": GEMMA3_RULES,
             "phi3": PHI3_RULES}.get(family, LLAMA_RULES)
    heads = HEAD_RULES["bert" if family == "bert" else "gpt2" if family == "gpt2" else "llama"]
    return trunk, heads


def _split_sizes(config: ModelConfig, parts: str) -> list[int]:
    if parts == "qkv":
        q, kv = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
        return [q, kv, kv]
    return [config.d_ff, config.d_ff]


def _fill(pattern: str, match: re.Match[str]) -> str:
    groups = match.groupdict()
    return pattern.replace("{i}", groups.get("i") or "").replace("{p}", groups.get("p") or "")


def _legacy_name(name: str) -> str:
    return name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def hf_to_ours(
    hf_names: list[str], family: str, load: Callable[[str], torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Convert an HF checkpoint's tensors to our names. Returns (state dict, unmapped HF names)."""
    trunk, heads = _rules(family)
    prefix = PREFIX.get(family, "model.")
    compiled = [(r, r.regex("hf"), False) for r in trunk] + [(r, r.regex("hf"), True) for r in heads]
    pieces: dict[str, dict[int, torch.Tensor]] = {}
    state: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for name in hf_names:
        if IGNORED.search(name):
            continue
        canonical = _legacy_name(name)
        for old, new in MULTIMODAL_PREFIXES if family == "gemma3_text" else ():
            if canonical.startswith(old):
                canonical = new + canonical[len(old):]
        stripped = canonical[len(prefix):] if canonical.startswith(prefix) else canonical
        found = next(((r, m) for r, regex, is_head in compiled
                      if (m := regex.match(canonical if is_head else stripped))), None)
        if found is None:
            unmapped.append(name)
            continue
        rule, match = found
        ours = _fill(rule.ours, match)
        tensor = load(name)
        if rule.transpose:
            tensor = tensor.t().contiguous()
        if rule.parts:
            pieces.setdefault(ours, {})[rule.part] = tensor
        else:
            state[ours] = tensor
    for ours, parts in pieces.items():
        state[ours] = torch.cat([parts[i] for i in sorted(parts)], dim=0)
        parts.clear()
    return state, unmapped


def ours_to_hf(state: Mapping[str, torch.Tensor], config: ModelConfig, family: str) -> dict[str, torch.Tensor]:
    """Convert our state dict (tied copies already removed) to HF tensor names for export."""
    trunk, heads = _rules(family)
    prefix = PREFIX.get(family, "model.")
    compiled = [(r, r.regex("ours"), False) for r in trunk] + [(r, r.regex("ours"), True) for r in heads]
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        matches = [(rule, m, is_head) for rule, regex, is_head in compiled if (m := regex.match(name))]
        if not matches:
            raise HFConversionError(f"parameter {name!r} has no Hugging Face name in the {family} family")
        for rule, match, is_head in matches:
            value = tensor
            if rule.parts:
                value = tensor.split(_split_sizes(config, rule.parts), dim=0)[rule.part]
            if rule.transpose:
                value = value.t()
            hf_name = _fill(rule.hf, match)
            out[hf_name if is_head else prefix + hf_name] = value.contiguous()
    return out

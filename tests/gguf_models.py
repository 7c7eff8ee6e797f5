"""Test helper: tiny random GGUF model files, written the way llama.cpp's converter writes them.

`write_gguf_model(path, arch, tensor_type)` builds a random LLMOS model of a small shape,
writes its tensors under llama.cpp's names with `gguf.GGUFWriter` (Llama Q/K rows permuted
as the converter permutes them, Gemma's norms as 1 + w, every matrix in `tensor_type`, norms in
F32) plus a tiny tokenizer (`gguf_tokenizers`), and returns the path. `write_model_tensors`
writes any such model (qwen3, gemma3 and phi3 too, with rope_freqs / LongRoPE factors as the
converter writes them), e.g. one loaded from a transformers checkpoint. Q8_0 / Q4_0 / Q4_1 / F16 / BF16 go
through the gguf package's own quantizers; it cannot write K-quants, so Q4_K / Q5_K / Q6_K
blocks are random bytes with small, finite f16 scales: any such bytes are a valid block.
"""

from __future__ import annotations

import math
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf_tokenizers import CHATML_TEMPLATE, GEMMA_TEMPLATE, add_tokenizer_metadata

from llmos.config import ModelConfig
from llmos.model import CausalLM

K_QUANTS = {  # type -> offsets of its f16 scale fields within a block (the rest is random codes)
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q6_K": (208,),
}


GGUF_ARCH = {"gemma3_text": "gemma3"}  # our family -> llama.cpp's architecture name


def _config(arch: str, vocab: int, tensor_type: str, tied: bool) -> ModelConfig:
    wide = tensor_type in K_QUANTS  # K-quant blocks hold 256 values of a row
    d, d_ff = (256, 512) if wide else (64, 128)
    shape = dict(vocab_size=vocab, d_model=d, n_layers=2, max_seq_len=64, d_ff=d_ff,
                 tie_embeddings=tied, initializer_range=0.1)
    if arch == "gpt2":  # transformers' GGUF reader assumes GPT-2's 4 x d_ff and 1024 positions
        shape.update(d_ff=4 * d, max_seq_len=1024)
        return ModelConfig(**shape, n_heads=4, position="learned", family="gpt2")
    llama = dict(n_heads=4, n_kv_heads=2, position="rope", rope_theta=10000.0, norm="rmsnorm", norm_eps=1e-5,
                 norm_bias=False, mlp="swiglu", mlp_bias=False, qkv_bias=arch == "qwen2", attn_out_bias=False,
                 family=arch)
    # transformers' GGUF reader takes Qwen3's head_dim as 128 and Gemma 3's query scale as 256^-0.5 whatever
    # the file says, and Gemma 3's every 6th layer as global: these shapes are the real models'.
    if arch == "qwen3":
        llama.update(head_dim=128, qk_norm=True)
    if arch == "gemma3":
        shape.update(n_layers=6, tie_embeddings=True)
        llama.update(n_heads=2, n_kv_heads=1, head_dim=256, mlp="geglu", norm_eps=1e-6, norm_weight_offset=1.0,
                     sandwich_norm=True, qk_norm=True, scale_embeddings=True, attn_scale=256 ** -0.5,
                     sliding_window=4, sliding_window_pattern=6, rope_theta=1e6, local_rope_theta=1e4,
                     family="gemma3_text")
    return ModelConfig(**shape, **llama)


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf row permutation of a Llama Q or K weight."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_freqs(config: ModelConfig) -> np.ndarray:
    """llama.cpp's converter's rope_freqs tensor for a Llama 3 rope scaling: each frequency's divisor."""
    scaling = config.rope_scaling
    dim = config.head_dim
    freqs = 1.0 / (config.rope_theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def _gguf_tensors(model: CausalLM, arch: str) -> dict[str, np.ndarray]:
    c = model.config
    state = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}
    if c.norm_weight_offset:  # Gemma: llama.cpp stores every norm as 1 + w
        state = {k: v + np.float32(c.norm_weight_offset) if "norm" in k else v for k, v in state.items()}
    out = {"token_embd.weight": state["transformer.embed.tokens.weight"],
           "output_norm.weight": state["transformer.final_norm.weight"]}
    if arch == "gpt2":
        out["position_embd.weight"] = state["transformer.embed.positions.weight"]
        out["output_norm.bias"] = state["transformer.final_norm.bias"]
    if not c.tie_embeddings:
        out["output.weight"] = state["lm_head.weight"]
    q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    for i in range(c.n_layers):
        b, g = f"transformer.blocks.{i}.", f"blk.{i}."
        out[g + "attn_norm.weight"] = state[b + "attn_norm.weight"]
        out[g + "ffn_norm.weight"] = state[b + "mlp_norm.weight"]
        out[g + "attn_output.weight"] = state[b + "attn.out.weight"]
        out[g + "ffn_down.weight"] = state[b + "mlp.down.weight"]
        if arch == "gpt2":
            for ours, theirs in (("attn_norm", "attn_norm"), ("mlp_norm", "ffn_norm"), ("attn.qkv", "attn_qkv"),
                                 ("attn.out", "attn_output"), ("mlp.up", "ffn_up"), ("mlp.down", "ffn_down")):
                out[g + theirs + ".bias"] = state[b + ours + ".bias"]
            out[g + "attn_qkv.weight"] = state[b + "attn.qkv.weight"]
            out[g + "ffn_up.weight"] = state[b + "mlp.up.weight"]
            continue
        if c.qk_norm:
            out[g + "attn_q_norm.weight"] = state[b + "attn.q_norm.weight"]
            out[g + "attn_k_norm.weight"] = state[b + "attn.k_norm.weight"]
        if c.sandwich_norm:
            out[g + "post_attention_norm.weight"] = state[b + "attn_out_norm.weight"]
            out[g + "post_ffw_norm.weight"] = state[b + "mlp_out_norm.weight"]
        if arch == "phi3":  # stored fused, as Hugging Face's Phi-3 has them
            out[g + "attn_qkv.weight"] = state[b + "attn.qkv.weight"]
            out[g + "ffn_up.weight"] = state[b + "mlp.up.weight"]
            continue
        wq, wk, wv = np.split(state[b + "attn.qkv.weight"], [q, q + kv])
        if arch == "llama":
            wq, wk = _permute(wq, c.n_heads), _permute(wk, c.n_kv_heads)
        out[g + "attn_q.weight"], out[g + "attn_k.weight"], out[g + "attn_v.weight"] = wq, wk, wv
        if arch == "qwen2":
            bq, bk, bv = np.split(state[b + "attn.qkv.bias"], [q, q + kv])
            out[g + "attn_q.bias"], out[g + "attn_k.bias"], out[g + "attn_v.bias"] = bq, bk, bv
        gate, up = np.split(state[b + "mlp.up.weight"], 2)
        out[g + "ffn_gate.weight"], out[g + "ffn_up.weight"] = gate, up
    return out


def _encode(values: np.ndarray, tensor_type: str, rng: np.random.Generator) -> tuple[np.ndarray, object]:
    kind = gguf.GGMLQuantizationType[tensor_type]
    if values.ndim == 1 or tensor_type == "F32":
        return values.astype(np.float32), None
    if tensor_type == "F16":
        return values.astype(np.float16), None
    if tensor_type in K_QUANTS:
        block_size, type_size = gguf.GGML_QUANT_SIZES[kind]
        rows = values.shape[0]
        blocks = rng.integers(0, 256, (rows, values.shape[1] // block_size, type_size), dtype=np.uint8)
        for offset in K_QUANTS[tensor_type]:
            scale = rng.uniform(5e-5, 2e-4, blocks.shape[:2]).astype(np.float16)
            blocks[..., offset:offset + 2] = scale.view(np.uint8).reshape(*blocks.shape[:2], 2)
        return blocks.reshape(rows, -1), kind
    return gguf.quants.quantize(values.astype(np.float32), kind), kind


def write_model_tensors(writer: gguf.GGUFWriter, model: CausalLM, tensor_type: str = "F32", seed: int = 0) -> None:
    """Write `model`'s hyperparameters and tensors (llama.cpp names, `tensor_type`) with `writer`, whose
    architecture and tokenizer metadata are already set, and close the file."""
    config = model.config
    arch = GGUF_ARCH.get(config.family, config.family)
    writer.add_block_count(config.n_layers)
    writer.add_context_length(config.max_seq_len)
    writer.add_embedding_length(config.d_model)
    writer.add_feed_forward_length(config.d_ff)
    writer.add_head_count(config.n_heads)
    if arch == "gpt2":
        writer.add_layer_norm_eps(config.norm_eps)
    else:
        writer.add_head_count_kv(config.n_kv_heads)
        writer.add_rope_freq_base(config.rope_theta)
        writer.add_rope_dimension_count(config.rope_dim)
        writer.add_layer_norm_rms_eps(config.norm_eps)
        writer.add_key_length(config.head_dim)
        writer.add_value_length(config.head_dim)
    if config.sliding_window:
        writer.add_sliding_window(config.sliding_window)
    tensors = _gguf_tensors(model, arch)
    scaling = config.rope_scaling or {}
    if scaling.get("rope_type") == "llama3":
        tensors["rope_freqs.weight"] = rope_freqs(config)
    if scaling.get("rope_type") == "longrope":  # as llama.cpp's Phi-3 converter writes it
        tensors["rope_factors_long.weight"] = np.array(scaling["long_factor"], dtype=np.float32)
        tensors["rope_factors_short.weight"] = np.array(scaling["short_factor"], dtype=np.float32)
        original = scaling["original_max_position_embeddings"]
        writer.add_rope_scaling_orig_ctx_len(original)
        factor = config.max_seq_len / original
        writer.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(factor) / math.log(original)) if factor > 1 else 1)
    rng = np.random.default_rng(seed)
    for name, values in tensors.items():
        data, raw = _encode(values, tensor_type, rng)
        writer.add_tensor(name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_gguf_model(directory: Path, arch: str = "llama", tensor_type: str = "F32", tied: bool = False,
                     tokenizer: str = "gpt2", seed: int = 0, file_name: str | None = None,
                     chat_template: str | None = CHATML_TEMPLATE, sampling: dict | None = None) -> Path:
    """A tiny random `arch` model as a GGUF file in `directory`; returns its path.
    sampling: general.sampling.* defaults to write, e.g. {"temp": 0.7, "top_k": 20}."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (file_name or f"tiny-{arch}-{tensor_type}.gguf")
    writer = gguf.GGUFWriter(str(path), arch)
    if tokenizer == "gpt2" and arch == "gemma3":
        tokenizer = "gemma"
    if tokenizer == "gemma" and chat_template == CHATML_TEMPLATE:
        chat_template = GEMMA_TEMPLATE
    for key, value in (sampling or {}).items():
        getattr(writer, f"add_sampling_{key}")(value)
    vocab = add_tokenizer_metadata(writer, tokenizer, chat_template=chat_template)
    if arch == "phi3" and tokenizer == "llama":  # else transformers' Phi3Config pads with id 32000, past the vocab
        writer.add_pad_token_id(0)
    config = _config(arch, vocab, tensor_type, tied or arch == "gpt2")
    torch.manual_seed(seed)
    model = CausalLM(config)
    if config.norm_weight_offset:  # Gemma's norms start at w = 0: make them matter
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.add_(torch.randn_like(p) * 0.3)
    write_model_tensors(writer, model, tensor_type, seed)
    return path

"""Test helper: tiny random GGUF model files, written the way llama.cpp's converter writes them.

`write_gguf_model(path, arch, tensor_type)` builds a random LLMOS model of a small shape,
writes its tensors under llama.cpp's names with `gguf.GGUFWriter` (Llama Q/K rows permuted
as the converter permutes them, every matrix in `tensor_type`, norms in F32) plus a tiny
tokenizer (`gguf_tokenizers`), and returns the path. Q8_0 / Q4_0 / Q4_1 / F16 / BF16 go
through the gguf package's own quantizers; it cannot write K-quants, so Q4_K / Q5_K / Q6_K
blocks are random bytes with small, finite f16 scales: any such bytes are a valid block.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import torch
from gguf_tokenizers import CHATML_TEMPLATE, add_tokenizer_metadata

from llmos.config import ModelConfig
from llmos.model import CausalLM

K_QUANTS = {  # type -> offsets of its f16 scale fields within a block (the rest is random codes)
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q6_K": (208,),
}


def _config(arch: str, vocab: int, tensor_type: str, tied: bool) -> ModelConfig:
    wide = tensor_type in K_QUANTS  # K-quant blocks hold 256 values of a row
    d, d_ff = (256, 512) if wide else (64, 128)
    shape = dict(vocab_size=vocab, d_model=d, n_layers=2, max_seq_len=64, d_ff=d_ff,
                 tie_embeddings=tied, initializer_range=0.1)
    if arch == "gpt2":  # transformers' GGUF reader assumes GPT-2's 4 x d_ff and 1024 positions
        shape.update(d_ff=4 * d, max_seq_len=1024)
        return ModelConfig(**shape, n_heads=4, position="learned", family="gpt2")
    return ModelConfig(**shape, n_heads=4, n_kv_heads=2, position="rope", rope_theta=10000.0, norm="rmsnorm",
                       norm_eps=1e-5, norm_bias=False, mlp="swiglu", mlp_bias=False, qkv_bias=arch == "qwen2",
                       attn_out_bias=False, family=arch)


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf row permutation of a Llama Q or K weight."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _gguf_tensors(model: CausalLM, arch: str) -> dict[str, np.ndarray]:
    c = model.config
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
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
    config, arch = model.config, model.config.family
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
        writer.add_rope_dimension_count(config.head_dim)
        writer.add_layer_norm_rms_eps(config.norm_eps)
    rng = np.random.default_rng(seed)
    for name, values in _gguf_tensors(model, arch).items():
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
    for key, value in (sampling or {}).items():
        getattr(writer, f"add_sampling_{key}")(value)
    vocab = add_tokenizer_metadata(writer, tokenizer, chat_template=chat_template)
    config = _config(arch, vocab, tensor_type, tied or arch == "gpt2")
    torch.manual_seed(seed)
    write_model_tensors(writer, CausalLM(config), tensor_type, seed)
    return path

"""Tiny random GPT-2 / Llama models built twice, in transformers and in LLMOS, with the same
weights copied across (no files, no downloads): the fixture of the parity tests and the benchmark.
"""

from __future__ import annotations

import torch

from llmos.config import ModelConfig
from llmos.model import CausalLM


def gpt2_pair(vocab=256, d_model=64, n_layers=2, n_heads=4, max_seq_len=128, std=0.2, seed=0,
              eos=None, pad=None):
    import transformers

    torch.manual_seed(seed)
    hf_config = transformers.GPT2Config(
        vocab_size=vocab, n_embd=d_model, n_layer=n_layers, n_head=n_heads, n_positions=max_seq_len,
        initializer_range=std, bos_token_id=eos, eos_token_id=eos, pad_token_id=pad,
    )
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    config = ModelConfig(vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                         max_seq_len=max_seq_len, position="learned", mlp="gelu_tanh", family="gpt2",
                         bos_token_id=eos, eos_token_id=eos, pad_token_id=pad)
    ours = CausalLM(config).eval()
    src = hf.state_dict()
    state = {"transformer.embed.tokens.weight": src["transformer.wte.weight"],
             "transformer.embed.positions.weight": src["transformer.wpe.weight"],
             "transformer.final_norm.weight": src["transformer.ln_f.weight"],
             "transformer.final_norm.bias": src["transformer.ln_f.bias"]}
    for i in range(n_layers):
        h, o = f"transformer.h.{i}.", f"transformer.blocks.{i}."
        for hf_name, our_name in [("ln_1", "attn_norm"), ("ln_2", "mlp_norm")]:
            state[o + our_name + ".weight"] = src[h + hf_name + ".weight"]
            state[o + our_name + ".bias"] = src[h + hf_name + ".bias"]
        for hf_name, our_name in [("attn.c_attn", "attn.qkv"), ("attn.c_proj", "attn.out"),
                                  ("mlp.c_fc", "mlp.up"), ("mlp.c_proj", "mlp.down")]:
            state[o + our_name + ".weight"] = src[h + hf_name + ".weight"].t()  # Conv1D is (in, out)
            state[o + our_name + ".bias"] = src[h + hf_name + ".bias"]
    _load(ours, state)
    return hf, ours


def llama_pair(vocab=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=128, max_seq_len=128,
               std=0.2, seed=0, eos=None, pad=None, rope_theta=10000.0):
    import transformers

    torch.manual_seed(seed)
    hf_config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=d_model, num_hidden_layers=n_layers, num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads, intermediate_size=d_ff, max_position_embeddings=max_seq_len,
        initializer_range=std, rms_norm_eps=1e-5, rope_theta=rope_theta, tie_word_embeddings=False,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=pad,
    )
    hf = transformers.LlamaForCausalLM(hf_config).eval()
    config = ModelConfig(vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                         n_kv_heads=n_kv_heads, d_ff=d_ff, max_seq_len=max_seq_len, position="rope",
                         rope_theta=rope_theta, norm="rmsnorm", norm_eps=1e-5, norm_bias=False,
                         mlp="swiglu", mlp_bias=False, qkv_bias=False, attn_out_bias=False,
                         tie_embeddings=False, family="llama",
                         bos_token_id=eos, eos_token_id=eos, pad_token_id=pad)
    ours = CausalLM(config).eval()
    src = hf.state_dict()
    state = {"transformer.embed.tokens.weight": src["model.embed_tokens.weight"],
             "transformer.final_norm.weight": src["model.norm.weight"],
             "lm_head.weight": src["lm_head.weight"]}
    for i in range(n_layers):
        h, o = f"model.layers.{i}.", f"transformer.blocks.{i}."
        state[o + "attn_norm.weight"] = src[h + "input_layernorm.weight"]
        state[o + "mlp_norm.weight"] = src[h + "post_attention_layernorm.weight"]
        state[o + "attn.qkv.weight"] = torch.cat([src[h + f"self_attn.{p}_proj.weight"] for p in "qkv"])
        state[o + "attn.out.weight"] = src[h + "self_attn.o_proj.weight"]
        state[o + "mlp.up.weight"] = torch.cat([src[h + "mlp.gate_proj.weight"], src[h + "mlp.up_proj.weight"]])
        state[o + "mlp.down.weight"] = src[h + "mlp.down_proj.weight"]
    _load(ours, state)
    return hf, ours


def _load(model: CausalLM, state: dict) -> None:
    missing, unexpected = model.load_state_dict({k: v.clone() for k, v in state.items()}, strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and model.config.tie_embeddings)]
    assert not missing and not unexpected, (missing, unexpected)

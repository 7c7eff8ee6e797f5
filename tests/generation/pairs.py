"""Tiny random GPT-2 / Llama models built twice, in transformers and in LLMOS, with the same
weights copied across (no files, no downloads): the fixture of the parity tests and the benchmark.
"""

from __future__ import annotations

import torch

from llmos.checkpoint.hf_config import config_from_hf
from llmos.checkpoint.hf_weights import hf_to_ours
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
    return hf, _convert(hf)


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
    return hf, _convert(hf)


def _convert(hf) -> CausalLM:
    """Our model with the transformers model's weights, through the checkpoint layer's name maps."""
    config = config_from_hf(hf.config.to_dict())
    source = hf.state_dict()
    state, unmapped = hf_to_ours(list(source), config.family, lambda name: source[name].clone())
    assert not unmapped, unmapped
    ours = CausalLM(config).eval()
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    return ours

"""RoPE settings that GGUF files carry as tensors load as their config.json twins do: Llama 3.1/3.2's
`rope_freqs` (read back as the llama3 parameters it came from), Phi-3.5's LongRoPE `rope_factors_*` with
Phi-4-mini's partial rotary, and Gemma 3 4B's scaled global layers. The oracle is transformers on the
safetensors checkpoint the GGUF file is written from (its GGUF loader ignores these tensors)."""

from __future__ import annotations

import gguf
import pytest
import torch
from gguf_models import write_model_tensors
from gguf_tokenizers import add_tokenizer_metadata

from llmos import AutoModelForCausalLM
from llmos.checkpoint.gguf_config import llama3_parameters
from llmos.errors import LLMOSError

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.parity
LLAMA3 = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192}  # Llama 3.2's
CASES = {
    "llama3_rope_freqs": ("llama", "LlamaForCausalLM", "LlamaConfig", dict(
        hidden_size=128, num_attention_heads=2, num_key_value_heads=1, rope_theta=500000.0,
        rope_scaling=dict(LLAMA3))),
    "phi3_longrope_partial": ("phi3", "Phi3ForCausalLM", "Phi3Config", dict(
        hidden_size=64, num_attention_heads=4, num_key_value_heads=4, original_max_position_embeddings=16,
        partial_rotary_factor=0.75, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        rope_scaling={"rope_type": "longrope", "short_factor": [1.0, 1.2, 1.5, 2.0, 2.5, 3.0],
                      "long_factor": [2.0, 3.0, 4.0, 6.0, 8.0, 9.5]})),
}


def _hf_then_gguf(case: str, tmp_path):
    """(transformers model, LLMOS model loaded from the GGUF file written from its weights)."""
    arch, cls_name, config_name, kwargs = CASES[case]
    path = tmp_path / f"{case}.gguf"
    writer = gguf.GGUFWriter(str(path), arch)
    vocab = add_tokenizer_metadata(writer, "gpt2")
    torch.manual_seed(0)
    config = getattr(transformers, config_name)(vocab_size=vocab, intermediate_size=96, num_hidden_layers=2,
                                                max_position_embeddings=64, **kwargs)
    theirs = getattr(transformers, cls_name)(config).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.3)
    theirs.save_pretrained(tmp_path / "hf")
    write_model_tensors(writer, AutoModelForCausalLM.from_pretrained(tmp_path / "hf"))
    ours = AutoModelForCausalLM.from_pretrained(path, quantize="none")
    theirs.generation_config.eos_token_id = ours.config.eos_token_id  # the GGUF tokenizer's end of turn
    return theirs, ours


@pytest.mark.parametrize("case", sorted(CASES))
def test_gguf_rope_tensors_give_the_safetensors_models_logits_and_greedy_tokens(case, tmp_path):
    theirs, ours = _hf_then_gguf(case, tmp_path)
    ids = torch.randint(0, 300, (1, 14), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, theirs(ids).logits, rtol=0, atol=1e-4)
    expected = theirs.generate(ids[:, :5], max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(ids[:, :5], max_new_tokens=20, min_new_tokens=20, do_sample=False), expected)


def test_rope_freqs_read_back_as_the_llama3_parameters_they_came_from(tmp_path):
    _, ours = _hf_then_gguf("llama3_rope_freqs", tmp_path)
    assert ours.config.rope_scaling == LLAMA3  # so `llmos convert --to hf` writes Llama 3's own config


def test_rope_freqs_of_no_llama3_shape_load_as_factors_and_refuse_hf_export(tmp_path):
    from llmos.checkpoint.hf_export import export_hf

    assert llama3_parameters([1.0, 3.0, 1.5, 8.0], 8, 10000.0, 8192) is None  # not monotonic: no llama3
    _, ours = _hf_then_gguf("llama3_rope_freqs", tmp_path)
    factors = [1.0 + 0.1 * i for i in range(32)]
    plain = ours.config.replace(rope_scaling={"rope_type": "frequency_factors", "factors": factors})
    assert plain.rope_scaling["rope_type"] == "frequency_factors"
    ours.config = plain
    with pytest.raises(LLMOSError, match="frequency_factors.*no Hugging Face equivalent"):
        export_hf(ours, tmp_path / "out")

"""Quantized checkpoints: `quantize_checkpoint` writes int8/int4 linears that load back bit for bit.

The reference is the in-memory quantized model (`from_pretrained(source, quantize=method)`); the
reloaded directory must give the very same logits, on few rows (the int8/int4 kernels) and on
many (the dequantized path).
"""

import json

import pytest
import torch
from gguf_models import write_gguf_model
from safetensors import safe_open

from llmos import AutoModelForCausalLM
from llmos.checkpoint import CheckpointError, load_pretrained
from llmos.checkpoint.convert import convert_checkpoint
from llmos.checkpoint.gguf_config import config_from_gguf
from llmos.checkpoint.gguf_file import open_gguf
from llmos.checkpoint.gguf_weights import gguf_weights
from llmos.checkpoint.quantize import quantize_checkpoint
from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.kernels import Int4Linear, Int8Linear
from llmos.model import CausalLM

KINDS = {"int8": Int8Linear, "int4": Int4Linear}


def _float_checkpoint(path, **over):
    """A tiny Llama-shaped model; d_ff=80 does not fit int4's groups of 32, so mlp.down stays float there."""
    config = ModelConfig(**{**dict(vocab_size=96, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=80,
                                   max_seq_len=32, position="rope", norm="rmsnorm", mlp="swiglu",
                                   tie_embeddings=True), **over})
    torch.manual_seed(0)
    CausalLM(config).save_pretrained(path)
    return path


def _assert_same_logits(a, b, vocab):
    ids = torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for x in (ids[:1, :1], ids[:1, :5], ids):  # 1 and 5 rows: the kernels; 24 rows: dequantized
            assert torch.equal(a(x).logits, b(x).logits)


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_checkpoint_reloads_with_the_logits_of_the_in_memory_quantized_model(tmp_path, method):
    source = _float_checkpoint(tmp_path / "float")
    quantize_checkpoint(source, tmp_path / method, method)
    in_memory = AutoModelForCausalLM.from_pretrained(source, quantize=method)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / method)
    assert isinstance(reloaded.transformer.blocks[1].attn.qkv, KINDS[method])
    assert isinstance(reloaded.lm_head, KINDS[method])  # the tied head is stored as its own codes
    assert reloaded.transformer.embed.tokens.weight.dtype == torch.float32
    _assert_same_logits(in_memory, reloaded, 96)


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_config_names_the_method_and_every_quantized_linear(tmp_path, method):
    quantize_checkpoint(_float_checkpoint(tmp_path / "float"), tmp_path / "q", method)
    entry = json.loads((tmp_path / "q" / "config.json").read_text())["quantization"]
    linears = ["attn.out", "attn.qkv", "mlp.up"] + (["mlp.down"] if method == "int8" else [])
    expected = sorted(["lm_head"] + [f"transformer.blocks.{i}.{n}" for i in range(2) for n in linears])
    assert entry == {"method": method, "group_size": 32 if method == "int4" else None, "modules": expected}
    with safe_open(str(tmp_path / "q" / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        qkv = "transformer.blocks.0.attn.qkv."
        assert f.get_tensor(qkv + "qweight").dtype == (torch.int8 if method == "int8" else torch.uint8)
        assert f.get_tensor(qkv + "scales").dtype == torch.bfloat16
    assert qkv + "weight" not in keys and "lm_head.weight" not in keys
    if method == "int4":
        assert "transformer.blocks.0.mlp.down.weight" in keys  # 80 inputs: left float, and not listed
    loaded = load_pretrained(tmp_path / "q")
    assert sorted(n for n, m in loaded.named_modules() if isinstance(m, KINDS[method])) == expected


def test_a_gguf_q4_source_keeps_its_codes_and_f16_scales_exactly_for_int4(tmp_path):
    path = write_gguf_model(tmp_path, "llama", "Q4_1")
    quantize_checkpoint(path, tmp_path / "q", "int4")
    file = open_gguf(path)
    weight = gguf_weights(file, config_from_gguf(file))["transformer.blocks.0.mlp.down.weight"]
    codes, scales, _ = weight.codes()
    with safe_open(str(tmp_path / "q" / "model.safetensors"), framework="pt") as f:
        assert torch.equal(f.get_tensor("transformer.blocks.0.mlp.down.qweight"), codes)
        stored = f.get_tensor("transformer.blocks.0.mlp.down.scales")
        assert stored.dtype == torch.float32 and torch.equal(stored, scales)  # the f16 values, not bf16-rounded
    assert (tmp_path / "q" / "tokenizer.json").is_file()
    generation = json.loads((tmp_path / "q" / "generation_config.json").read_text())
    assert generation["eos_token_id"] == AutoModelForCausalLM.from_pretrained(path).generation_config.eos_token_id


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_a_gguf_source_reloads_with_the_logits_of_the_in_memory_quantized_model(tmp_path, method):
    path = write_gguf_model(tmp_path, "qwen2", "Q4_0", tied=True)
    quantize_checkpoint(path, tmp_path / method, method)
    in_memory = AutoModelForCausalLM.from_pretrained(path, quantize=method)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / method)
    _assert_same_logits(in_memory, reloaded, in_memory.config.vocab_size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dtype_auto_reads_the_float_tensors_not_the_bfloat16_scales(tmp_path, dtype):
    source = tmp_path / "float"
    torch.manual_seed(0)
    CausalLM(ModelConfig.from_preset("micro", d_model=64)).to(dtype).save_pretrained(source)
    quantize_checkpoint(source, tmp_path / "q", "int8")  # "lm_head.scales" (bf16) is the first float key
    model = load_pretrained(tmp_path / "q", dtype="auto")
    assert model.transformer.embed.tokens.weight.dtype == dtype
    assert model.transformer.blocks[0].attn.qkv.qweight.dtype == torch.int8
    assert model.transformer.blocks[0].attn.qkv.scales.dtype == torch.bfloat16
    assert load_pretrained(tmp_path / "q").transformer.embed.tokens.weight.dtype == torch.float32


def test_quantizing_a_quantized_checkpoint_names_its_method_and_the_way_out(tmp_path):
    quantize_checkpoint(_float_checkpoint(tmp_path / "float"), tmp_path / "q", "int4")
    with pytest.raises(CheckpointError, match=r"already quantized \(int4\).*float checkpoint"):
        quantize_checkpoint(tmp_path / "q", tmp_path / "again", "int8")
    assert not (tmp_path / "again").exists()


def test_an_unknown_method_names_the_valid_ones(tmp_path):
    with pytest.raises(CheckpointError, match=r"'int3'.*\['int8', 'int4'\]"):
        quantize_checkpoint(_float_checkpoint(tmp_path / "float"), tmp_path / "q", "int3")


def test_a_model_with_nothing_the_kernel_takes_is_refused(tmp_path):
    source = _float_checkpoint(tmp_path / "float", d_model=48, n_heads=4, d_ff=80, vocab_size=90)
    with pytest.raises(CheckpointError, match="no linear layer .* int4"):
        quantize_checkpoint(source, tmp_path / "q", "int4")


def test_from_pretrained_refuses_a_second_method_on_a_quantized_checkpoint(tmp_path):
    quantize_checkpoint(_float_checkpoint(tmp_path / "float"), tmp_path / "q", "int4")
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path / "q", quantize="int4").lm_head, Int4Linear)
    with pytest.raises(LLMOSError, match=r"already quantized \(int4\); quantize='int8'"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "q", quantize="int8")
    with pytest.raises(LLMOSError, match=r"quantize='int3' is not valid.*'auto', 'none', 'int8', 'int4'"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "float", quantize="int3")


def test_a_listed_module_the_model_lacks_or_a_missing_tensor_is_an_error(tmp_path):
    from safetensors.torch import load_file, save_file

    quantize_checkpoint(_float_checkpoint(tmp_path / "float"), tmp_path / "q", "int8")
    config_file, weights_file = tmp_path / "q" / "config.json", tmp_path / "q" / "model.safetensors"
    config = json.loads(config_file.read_text())
    config["quantization"]["modules"].append("transformer.blocks.0.attn.nope")
    config_file.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="'transformer.blocks.0.attn.nope'.*no linear layer"):
        load_pretrained(tmp_path / "q")
    config["quantization"]["modules"].pop()
    config_file.write_text(json.dumps(config))
    state = load_file(weights_file)
    del state["lm_head.scales"]  # a head tensor: a float head's would be freshly initialised
    save_file(state, weights_file)
    with pytest.raises(CheckpointError, match=r"quantized layers' tensors \['lm_head.scales'\] are not in"):
        load_pretrained(tmp_path / "q")


def test_convert_to_hf_refuses_a_quantized_checkpoint_and_to_llmos_keeps_it(tmp_path):
    quantize_checkpoint(_float_checkpoint(tmp_path / "float"), tmp_path / "q", "int8")
    with pytest.raises(LLMOSError, match="int8-quantized .* transformers cannot load; export the float"):
        convert_checkpoint(tmp_path / "q", tmp_path / "hf", to="hf")
    assert not (tmp_path / "hf").exists()
    convert_checkpoint(tmp_path / "q", tmp_path / "copy", to="llmos")
    _assert_same_logits(AutoModelForCausalLM.from_pretrained(tmp_path / "q"),
                        AutoModelForCausalLM.from_pretrained(tmp_path / "copy"), 96)


def test_a_model_mixing_kernels_saves_and_reloads_them(tmp_path):
    """int4 layers and a grouped int8 head: SmolLM2 loads as stored this way (Q4_1 + a Q8_0 head)."""
    from llmos.kernels import GroupInt8Linear

    model = AutoModelForCausalLM.from_pretrained(_float_checkpoint(tmp_path / "float"), quantize="int4")
    model.lm_head = GroupInt8Linear.from_float(model.transformer.embed.tokens.weight)
    model.save_pretrained(tmp_path / "mixed")
    entry = json.loads((tmp_path / "mixed" / "config.json").read_text())["quantization"]
    assert entry["method"] == "mixed"
    assert entry["modules"]["lm_head"] == "int8-group32"
    assert entry["modules"]["transformer.blocks.0.attn.qkv"] == "int4"
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "mixed")
    assert isinstance(reloaded.lm_head, GroupInt8Linear)
    _assert_same_logits(model, reloaded, 96)

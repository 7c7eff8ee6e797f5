"""GGUF files load into LLMOS as transformers' own GGUF loader loads them: same logits, same tokens.

Fixtures are tiny random models written in the test with gguf.GGUFWriter (`gguf_models`), one
per architecture and tensor type.
"""

import json
import warnings

import gguf
import numpy as np
import pytest
import torch
from gguf_models import write_gguf_model

from llmos import AutoModelForCausalLM, AutoTokenizer
from llmos.checkpoint.gguf_config import config_from_gguf
from llmos.checkpoint.gguf_file import GGUFError, open_gguf
from llmos.checkpoint.gguf_weights import gguf_weights
from llmos.errors import LLMOSError
from llmos.kernels import Int4Linear, Int8Linear

ARCHITECTURES = ("llama", "qwen2", "gpt2")
NEW_ARCHITECTURES = ("qwen3", "gemma3", "phi3")  # issue 26: the types Q4_K_M files use, and floats
TYPES = ("F32", "F16", "BF16", "Q8_0", "Q5_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K")
CASES = [(a, t) for a in ARCHITECTURES for t in TYPES] + [
    (a, t) for a in NEW_ARCHITECTURES for t in ("F32", "F16", "Q8_0", "Q5_0", "Q4_K", "Q6_K")]


def _transformers(path):
    import transformers

    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                                 dtype=torch.float32).eval()


@pytest.mark.parity
@pytest.mark.parametrize("arch, tensor_type", CASES)
def test_logits_match_transformers_gguf_loading(tmp_path, arch, tensor_type):
    path = write_gguf_model(tmp_path, arch, tensor_type)
    theirs = _transformers(path)
    ours = AutoModelForCausalLM.from_pretrained(path, quantize="none")
    ids = torch.randint(0, ours.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = theirs(ids).logits, ours(ids).logits
    assert expected.abs().max() > 0.5  # the fixture's weights are not degenerate
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4)


@pytest.mark.parity
@pytest.mark.parametrize("arch", ARCHITECTURES + NEW_ARCHITECTURES)
def test_greedy_continuation_and_chat_ids_match_transformers(tmp_path, arch):
    import transformers

    tokenizer = {"llama": "llama", "phi3": "llama", "gemma3": "gemma"}.get(arch, "gpt2")
    path = write_gguf_model(tmp_path, arch, "Q4_1" if arch in ARCHITECTURES else "Q5_0", tokenizer=tokenizer)
    theirs = _transformers(path)
    their_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    messages = [{"role": "user", "content": "Hello, how are you?"}]
    chat = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert chat == their_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                       return_dict=False)
    text = "def add(a, b):\n    return a + b  # 天气 🙂   spaces"
    assert tokenizer.encode(text) == their_tokenizer.encode(text)
    ours = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, quantize="none")
    ids = torch.tensor([chat])
    expected = theirs.generate(ids, max_new_tokens=12, min_new_tokens=12, do_sample=False,
                               pad_token_id=tokenizer.pad_token_id or 0)
    assert torch.equal(ours.generate(ids, max_new_tokens=12, min_new_tokens=12, do_sample=False), expected)


@pytest.mark.parametrize("tensor_type", ["Q4_0", "Q4_1"])
def test_q4_blocks_become_int4_codes_without_a_float_detour(tmp_path, tensor_type):
    """The codes and f16 scales read from the blocks give the gguf package's values exactly."""
    path = write_gguf_model(tmp_path, "llama", tensor_type)
    file = open_gguf(path)
    weights = gguf_weights(file, config_from_gguf(file))
    weight = weights["transformer.blocks.0.mlp.down.weight"]
    qweight, scales, zeros = weight.codes()
    codes = torch.stack([qweight & 15, qweight >> 4], -1).flatten(1).double().view(weight.shape[0], -1, 32)
    values = (codes - 8) * scales.double()[..., None] + zeros.double()[..., None]
    torch.testing.assert_close(values.view(weight.shape).float(), weight.to_float(), rtol=0, atol=1e-6)


def test_auto_keeps_q4_linears_in_the_int4_kernel_and_close_to_float(tmp_path):
    path = write_gguf_model(tmp_path, "llama", "Q4_1", tied=True)
    quantized = AutoModelForCausalLM.from_pretrained(path)  # quantize="auto": as stored
    plain = AutoModelForCausalLM.from_pretrained(path, quantize="none")
    assert isinstance(quantized.transformer.blocks[0].attn.qkv, Int4Linear)
    assert quantized.transformer.embed.tokens.weight.dtype == torch.float32
    ids = torch.randint(0, plain.config.vocab_size, (1, 9))
    with torch.no_grad():
        a, b = quantized(ids).logits, plain(ids).logits
    assert (a - b).abs().max() < 0.02 * b.abs().max()  # the same codes; scales and activations in bf16


@pytest.mark.parametrize("method", ["int8", "int4"])
def test_quantize_argument_puts_every_linear_in_that_kernel(tmp_path, method):
    path = write_gguf_model(tmp_path, "qwen2", "F16")
    model = AutoModelForCausalLM.from_pretrained(path, quantize=method)
    kind = Int8Linear if method == "int8" else Int4Linear
    assert all(isinstance(b.attn.qkv, kind) and isinstance(b.mlp.down, kind) for b in model.transformer.blocks)
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()


def test_generation_defaults_come_from_the_metadata(tmp_path):
    path = write_gguf_model(tmp_path, "llama", "F32")
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id == model.config.eos_token_id
    assert model.generation_config.bos_token_id == tokenizer.bos_token_id


def test_sampling_defaults_come_from_the_general_sampling_metadata(tmp_path):
    path = write_gguf_model(tmp_path, "llama", "F32", sampling={"temp": 0.6, "top_k": 20, "top_p": 0.9,
                                                                "min_p": 0.05, "penalty_repeat": 1.3})
    config = AutoModelForCausalLM.from_pretrained(path).generation_config
    assert (config.temperature, config.top_k, config.min_p) == (pytest.approx(0.6), 20, pytest.approx(0.05))
    assert config.top_p == pytest.approx(0.9)
    assert config.do_sample is False  # greedy unless asked, as for every model; these apply when sampling
    assert config.repetition_penalty == 1.0  # llama.cpp's applies to the last n tokens only: not the same rule


def test_loading_info_reports_a_classifiers_head_from_a_gguf_file_as_missing(tmp_path):
    from llmos import AutoModelForSequenceClassification

    path = write_gguf_model(tmp_path, "llama", "F32")
    _, info = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, output_loading_info=True)
    assert info["missing_keys"] == ["classifier.weight"] and info["unexpected_keys"] == []
    _, causal = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True)
    assert causal["missing_keys"] == [] == causal["unexpected_keys"]


@pytest.mark.parity
@pytest.mark.parametrize("arch, to", [("llama", "llmos"), ("llama", "hf"), ("qwen3", "hf"), ("gemma3", "hf"), ("gemma3", "llmos"),
                                      ("phi3", "hf")])
def test_convert_writes_a_checkpoint_with_the_same_logits(tmp_path, arch, to):
    from llmos.checkpoint.convert import convert_checkpoint

    path = write_gguf_model(tmp_path / "src", arch, "Q8_0")
    out = convert_checkpoint(path, tmp_path / "out", to=to)
    ids = torch.randint(0, 300, (1, 10))
    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(path, quantize="none")(ids).logits
        if to == "hf":
            import transformers

            converted = transformers.AutoModelForCausalLM.from_pretrained(out).eval()(ids).logits
        else:
            converted = AutoModelForCausalLM.from_pretrained(out)(ids).logits
    torch.testing.assert_close(converted, expected, rtol=0, atol=1e-4)
    assert AutoTokenizer.from_pretrained(out).encode("Hello world") == AutoTokenizer.from_pretrained(
        path).encode("Hello world")
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] is not None


# ---- bad input ---------------------------------------------------------------------------------


def test_a_file_that_is_not_gguf_says_so(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(GGUFError, match="is not a GGUF file"):
        AutoModelForCausalLM.from_pretrained(bad)


def test_a_truncated_file_is_one_clear_error(tmp_path):
    path = write_gguf_model(tmp_path, "llama", "Q4_1")
    data = path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(GGUFError, match="truncated or corrupt"):
        AutoModelForCausalLM.from_pretrained(cut)


def test_an_unsupported_architecture_names_the_supported_ones(tmp_path):
    path = tmp_path / "falcon.gguf"
    writer = gguf.GGUFWriter(str(path), "falcon")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFError, match=r"architecture 'falcon' is not supported; expected one of \['llama'"):
        AutoModelForCausalLM.from_pretrained(path)


def test_an_unsupported_tensor_type_names_what_was_found_and_what_is_supported(tmp_path, monkeypatch):
    import gguf_models

    monkeypatch.setitem(gguf_models.K_QUANTS, "Q2_K", (80, 82))  # random Q2_K blocks with sane scales
    path = write_gguf_model(tmp_path, "llama", "Q2_K")
    with pytest.raises(GGUFError, match=r"tensor type\(s\) not supported: .*Q2_K.*supported types are \['F32'"):
        AutoModelForCausalLM.from_pretrained(path, quantize="none")


def test_an_unknown_quantize_value_names_the_choices(tmp_path):
    path = write_gguf_model(tmp_path, "llama", "F32")
    with pytest.raises(LLMOSError, match=r"quantize='int3' is not valid; expected one of \['auto', 'none'"):
        AutoModelForCausalLM.from_pretrained(path, quantize="int3")


def test_a_directory_of_gguf_files_asks_which_one(tmp_path):
    write_gguf_model(tmp_path, "llama", "F32")
    with pytest.raises(LLMOSError, match="gguf_file=NAME"):
        AutoModelForCausalLM.from_pretrained(tmp_path)

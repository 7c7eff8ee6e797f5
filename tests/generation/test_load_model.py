"""`load_model`, the one way to load: a name, a GGUF file, an LLMOS or Hugging Face directory or a LoRA adapter
directory gives the model, its tokenizer, its stop ids and a report of what was loaded (format, store,
architecture, quantization as loaded, adapters, missing and unexpected keys); an architecture LLMOS does not
implement is one line naming the supported ones."""

from __future__ import annotations

import gguf
import pytest
import torch
from gguf_models import write_gguf_model

from llmos.checkpoint.hf_export import export_hf
from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.generation.loading import describe_source, load_model
from llmos.model import CausalLM


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(directory, model, tokenizer): a tiny Llama-shaped chat model saved with its ChatML tokenizer."""
    from llmos.tokenizer.training import train_tokenizer

    tokenizer = train_tokenizer(["the cat sat on the mat", "hello there"] * 5, kind="bpe", vocab_size=300,
                                min_frequency=1)
    config = ModelConfig.from_preset("micro", vocab_size=len(tokenizer), position="rope", norm="rmsnorm",
                                     mlp="swiglu", eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = CausalLM(config).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    model.save_pretrained(path, tokenizer=tokenizer)
    return path, model, tokenizer


def with_saved_adapter(model, directory, base_path, seed: int, std: float):
    """(a copy of `model` with a random all-linear LoRA adapter, the adapter saved in `directory`)."""
    from llmos.adapters import add_lora
    from llmos.checkpoint.peft_format import resolve_targets, save_adapter

    tuned = CausalLM(model.config).eval()
    tuned.load_state_dict(model.state_dict())
    torch.manual_seed(seed)
    add_lora(tuned, resolve_targets(tuned, "all-linear")[0], r=4)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if ".B." in name:
                p.normal_(0, std)  # a fresh adapter changes nothing: make it matter
    return tuned, save_adapter(tuned, directory, base_model=str(base_path))


def test_a_checkpoint_loads_with_its_tokenizer_stop_ids_and_report(checkpoint):
    path, model, tokenizer = checkpoint
    loaded = load_model(path)
    ids = torch.tensor([tokenizer.encode("the cat")])
    torch.testing.assert_close(loaded.model(ids).logits, model(ids).logits)
    assert loaded.tokenizer.get_vocab() == tokenizer.get_vocab()
    assert loaded.stop_ids == [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]
    report = loaded.report
    assert (report.source.format, report.source.store, report.source.path) == ("checkpoint", None, path)
    assert (report.architecture, report.quantization, report.adapters) == ("llmos", "none", {})  # our own config
    assert report.missing_keys == [] and report.unexpected_keys == []
    assert load_model(path, quantize="int8").report.quantization == "int8"


def test_a_name_in_the_models_folder_and_a_hugging_face_directory_load_the_same_model(checkpoint, tmp_path,
                                                                                      monkeypatch):
    path, model, tokenizer = checkpoint
    export_hf(path, tmp_path / "models" / "tiny-hf")
    monkeypatch.setenv("LLMOS_MODELS_DIR", str(tmp_path / "models"))
    loaded = load_model("tiny-hf")
    assert loaded.report.source.store == "models folder" and (tmp_path / "models" / "tiny-hf" / "config.json").is_file()
    ids = torch.tensor([tokenizer.encode("the cat")])
    torch.testing.assert_close(loaded.model(ids).logits, model(ids).logits)
    assert loaded.stop_ids[0] == tokenizer.eos_token_id


def test_a_gguf_file_reports_its_architecture_and_the_kernels_its_blocks_run_in(tmp_path):
    path = write_gguf_model(tmp_path, "qwen2", "Q8_0")
    loaded = load_model(path)
    assert (loaded.report.source.format, loaded.report.architecture) == ("gguf", "qwen2")
    assert loaded.report.quantization.startswith("int8")  # Q8_0 blocks kept as stored
    assert load_model(path, quantize="none").report.quantization == "none"
    assert loaded.tokenizer.eos_token_id in loaded.stop_ids


def test_a_classifier_head_the_checkpoint_lacks_is_reported_missing(checkpoint):
    path, _, _ = checkpoint
    assert describe_source(path).head == "causal-lm"
    loaded = load_model(path, "classifier", num_labels=3)
    assert loaded.report.missing_keys == ["classifier.weight", "classifier.bias"]


def test_an_adapter_directory_loads_on_its_base_with_the_base_tokenizer(checkpoint, tmp_path):

    path, model, tokenizer = checkpoint
    tuned, adapter = with_saved_adapter(model, tmp_path / "adapter", path, seed=1, std=0.1)
    loaded = load_model(adapter)
    assert loaded.report.source.format == "adapter" and loaded.report.adapters == {"default": adapter}
    ids = torch.tensor([tokenizer.encode("the cat")])
    torch.testing.assert_close(loaded.model(ids).logits, tuned(ids).logits)
    assert loaded.tokenizer.get_vocab() == tokenizer.get_vocab() and loaded.stop_ids[0] == tokenizer.eos_token_id


def test_an_unsupported_architecture_is_one_line_naming_the_supported_ones(tmp_path, llmos_cli):
    path = tmp_path / "mamba.gguf"
    writer = gguf.GGUFWriter(str(path), "mamba")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", torch.zeros(4, 8).numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(LLMOSError, match=r"architecture 'mamba' is not supported; expected one of \[.*'llama'"):
        load_model(path)
    for verb in (["generate", path, "-p", "hi"], ["chat", path], ["serve", path]):
        code, _, err = llmos_cli(*verb)
        assert code == 2 and err.count("\n") == 1 and "'mamba' is not supported" in err, (verb, err)


def test_a_checkpoint_without_a_tokenizer_says_so(checkpoint, tmp_path):
    _, model, _ = checkpoint
    model.save_pretrained(tmp_path / "bare")
    with pytest.raises(LLMOSError, match="has no tokenizer.json"):
        load_model(tmp_path / "bare")
    assert load_model(tmp_path / "bare", tokenizer=False).stop_ids == [model.config.eos_token_id]


def test_a_tools_adapter_decodes_only_the_requests_that_carry_tools(checkpoint, tmp_path, llmos_cli):
    """load_model(tools_adapter=DIR) puts the adapter on inactive: a plain request gets the base model's
    reply, a request with tools the adapter's (the generator switches per request); off, the model alone."""
    pytest.importorskip("llguidance")
    from llmos.adapters import active_adapter
    from llmos.generation.local import LocalGenerator
    from llmos.generation.service import GenerationParams

    _, small, tokenizer = checkpoint
    torch.manual_seed(0)
    model = CausalLM(small.config.replace(max_seq_len=1024)).eval()  # room for the tools' listing
    path = tmp_path / "base"
    model.save_pretrained(path, tokenizer=tokenizer)
    _, adapter = with_saved_adapter(model, tmp_path / "tools", path, seed=2, std=0.5)
    loaded = load_model(path, tools_adapter=adapter)
    assert loaded.tools_adapter == "tools" and loaded.report.adapters == {"tools": adapter}
    assert active_adapter(loaded.model) is None
    tool = {"name": "shout", "description": "Say a word loudly.",
            "parameters": {"type": "object", "properties": {"word": {"type": "string", "maxLength": 6}},
                           "required": ["word"]}}
    chat = [{"role": "user", "content": "the cat"}]
    plain, with_tools = GenerationParams(max_new_tokens=8), GenerationParams(max_new_tokens=120, tools=(tool,),
                                                                             tool_choice="required")

    def replies(model, tools_adapter):
        generator = LocalGenerator(model, loaded.tokenizer, loaded.stop_ids, tools_adapter=tools_adapter)
        return [c.text for c in generator.generate([chat, chat], [plain, with_tools])]

    base = load_model(path, tools_adapter=False)
    assert base.tools_adapter is None and base.report.adapters == {}
    base_plain, base_tools = replies(base.model, None)
    tuned_plain, tuned_tools = replies(loaded.model, "tools")
    assert tuned_plain == base_plain  # the plain request: the base model, exactly
    assert tuned_tools != base_tools and tuned_tools.startswith("<tool_call>")  # the adapter's call
    with_adapter_on = load_model(path, adapter=adapter, tools_adapter=False)
    assert replies(with_adapter_on.model, None)[1] == tuned_tools
    code, _, err = llmos_cli("serve", str(path), "--tools-adapter", str(tmp_path / "nowhere"))
    assert code == 2 and "--tools-adapter" in err and "not auto, off, or a LoRA adapter directory" in err

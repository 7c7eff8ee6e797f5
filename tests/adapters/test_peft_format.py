"""LoRA adapters written by LLMOS load in PEFT on the exported transformers model with the same
logits (also where LLMOS fuses q/k/v and gate/up), and PEFT's adapters load here."""

from __future__ import annotations

import json

import pytest
import torch

from llmos.adapters import LoRAError, add_lora, merge_lora, set_adapter, using_adapter
from llmos.checkpoint import export_hf
from llmos.checkpoint.peft_format import load_adapter, resolve_targets, save_adapter
from llmos.config import ModelConfig
from llmos.model import CausalLM, SequenceClassifier

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
pytestmark = pytest.mark.parity
TOL = 1e-4


def llama(**over) -> ModelConfig:
    base = dict(vocab_size=80, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=64)
    return ModelConfig.from_preset("nano", **{**base, **over})


def gpt2(**over) -> ModelConfig:
    base = dict(vocab_size=80, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=64)
    return ModelConfig.from_preset("micro", **{**base, **over})


def bert(**over) -> ModelConfig:
    base = dict(vocab_size=80, d_model=32, n_layers=2, n_heads=4, d_ff=48, max_seq_len=64)
    return ModelConfig.from_preset("bert-base", **{**base, **over})


def _train_a_little(model) -> None:
    """Give every adapter tensor (and the head) a random nonzero value, as training would."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".adapters." in name or name.startswith("classifier"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


IDS = torch.randint(1, 80, (2, 7), generator=torch.Generator().manual_seed(5))

CASES = {
    "llama_q_v_gate": (CausalLM, llama, ["q_proj", "v_proj", "gate_proj"], "AutoModelForCausalLM"),
    "llama_all_linear": (CausalLM, llama, ["all-linear"], "AutoModelForCausalLM"),
    "llama_our_names": (CausalLM, llama, ["qkv", "down"], "AutoModelForCausalLM"),
    "gpt2_attn": (CausalLM, gpt2, ["c_attn", "attn.c_proj"], "AutoModelForCausalLM"),
    "bert_classifier": (SequenceClassifier, lambda: bert(num_labels=3), ["query", "value", "attention.output.dense"],
                        "AutoModelForSequenceClassification"),
    "llama_classifier": (SequenceClassifier, lambda: llama(pad_token_id=0, classifier_bias=False, num_labels=3),
                         ["q_proj", "v_proj"], "AutoModelForSequenceClassification"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_adapter_loads_in_peft_with_the_same_logits(case, tmp_path):
    head, make_config, targets, auto = CASES[case]
    torch.manual_seed(0)
    model = head(make_config()).eval()
    export_hf(model, tmp_path / "base")
    chosen, _ = resolve_targets(model, targets)
    add_lora(model, chosen, r=4, alpha=8)
    _train_a_little(model)
    save_adapter(model, tmp_path / "adapter", base_model=str(tmp_path / "base"))
    with torch.no_grad():
        ours = model(IDS).logits
    hf = getattr(transformers, auto).from_pretrained(tmp_path / "base").eval()
    peft_model = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    with torch.no_grad():
        theirs = peft_model(input_ids=IDS).logits
    assert (ours - theirs).abs().max().item() < TOL
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and config["peft_type"] == "LORA"


def test_an_adapter_on_the_top_blocks_only_loads_in_peft_with_the_same_logits(tmp_path):
    from llmos.training.finetune import apply_method
    from llmos.training.finetune_recipe import FinetuneConfig

    torch.manual_seed(0)
    model = CausalLM(llama(n_layers=3)).eval()
    export_hf(model, tmp_path / "base")
    apply_method(model, FinetuneConfig(method="lora", lora_targets="all-linear", train_top=1, lora_r=4, lora_alpha=8))
    _train_a_little(model)
    save_adapter(model, tmp_path / "adapter", base_model=str(tmp_path / "base"))
    with torch.no_grad():
        ours = model(IDS).logits
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "base").eval()
    peft_model = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    with torch.no_grad():
        theirs = peft_model(input_ids=IDS).logits
    assert (ours - theirs).abs().max().item() < TOL
    targets = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["target_modules"]
    assert targets and all(".layers.2." in name for name in targets)


def test_peft_trained_adapter_loads_here_with_the_same_logits(tmp_path):
    torch.manual_seed(0)
    model = CausalLM(llama()).eval()
    export_hf(model, tmp_path / "base")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    config = peft.LoraConfig(r=4, lora_alpha=16, target_modules=["k_proj", "up_proj", "o_proj"],
                             init_lora_weights=False)  # random B: a nonzero update
    peft_model = peft.get_peft_model(hf, config).eval()
    peft_model.save_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        theirs = peft_model(input_ids=IDS).logits
    load_adapter(model, tmp_path / "adapter")
    with torch.no_grad():
        ours = model(IDS).logits
    assert (ours - theirs).abs().max().item() < TOL


def test_several_adapters_switch_per_call_and_merge(tmp_path):
    torch.manual_seed(0)
    model = CausalLM(llama()).eval()
    with torch.no_grad():
        base_logits = model(IDS).logits
    targets, _ = resolve_targets(model, ["all-linear"])
    add_lora(model, targets, r=2, alpha=4, name="one")
    add_lora(model, resolve_targets(model, ["q_proj"])[0], r=2, alpha=4, name="two")
    _train_a_little(model)
    logits = {}
    for name in ("one", "two", None):
        with using_adapter(model, name), torch.no_grad():
            logits[name] = model(IDS).logits
    assert (logits[None] - base_logits).abs().max() < 1e-6
    assert (logits["one"] - logits["two"]).abs().max() > 1e-3
    set_adapter(model, "one")
    merged = merge_lora(model)
    assert not any(".adapters." in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        assert (merged(IDS).logits - logits["one"]).abs().max() < TOL


def test_targets_that_match_nothing_name_the_modules_that_exist():
    model = CausalLM(llama())
    with pytest.raises(LoRAError, match=r"match no module.*q_proj"):
        resolve_targets(model, ["query_proj"])


def test_adapter_of_another_base_model_is_refused_naming_both(tmp_path):
    model = CausalLM(llama())
    add_lora(model, resolve_targets(model, ["q_proj"])[0], r=2, alpha=4)
    save_adapter(model, tmp_path / "adapter", base_model="tiny-llama-32")
    other = CausalLM(llama(d_model=64, head_dim=16))
    with pytest.raises(LoRAError, match=r"made for base model 'tiny-llama-32', not for 'other-64'"):
        load_adapter(other, tmp_path / "adapter", base_label="other-64")

"""LoRA layers: a decode (no gradients) reuses a fused layer's stacked B, and still sees every
change to the adapter made after it (a load, a training step); an adapter made under
inference_mode (whose tensors keep no version) still decodes."""

from __future__ import annotations

import torch

from llmos.adapters import add_lora, lora_layers
from llmos.checkpoint.peft_format import resolve_targets
from llmos.config import ModelConfig
from llmos.model import CausalLM

IDS = torch.randint(1, 80, (2, 7), generator=torch.Generator().manual_seed(5))


def test_a_forward_without_gradients_reuses_the_stacked_B_and_sees_a_change_made_after_it():
    torch.manual_seed(0)
    config = ModelConfig.from_preset("nano", vocab_size=80, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                                     d_ff=48, max_seq_len=64)
    model = CausalLM(config).eval()
    add_lora(model, resolve_targets(model, ["all-linear"])[0], r=2, alpha=4)
    fused = next(layer.adapters["default"] for _, layer in lora_layers(model) if len(layer.adapters["default"].parts) > 1)
    with torch.no_grad():
        before = model(IDS).logits  # B is zero: the adapter changes nothing yet
        assert fused.stacked_B() is fused.stacked_B()
        for name, p in model.named_parameters():
            if ".adapters." in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * 0.2)
        after = model(IDS).logits
    stacked_afresh = model(IDS).logits  # with gradients: B is stacked on every call
    assert (after - before).abs().max() > 1e-3
    assert (after - stacked_afresh).abs().max() < 1e-6


def test_an_adapter_made_under_inference_mode_decodes_without_gradients():
    from llmos.adapters.lora import LoRAAdapter

    with torch.inference_mode():  # its tensors keep no version: B is stacked on every call
        adapter = LoRAAdapter(8, 12, [(0, 6), (6, 6)], r=2, alpha=4)
    with torch.no_grad():
        assert adapter(torch.ones(1, 8)).shape == (1, 12)

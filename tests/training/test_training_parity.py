"""Training steps match transformers: same initial weights, same batches, same AdamW -> same losses."""

from __future__ import annotations

import pytest
import torch

from llmos.checkpoint import export_hf
from llmos.config import ModelConfig
from llmos.model import CausalLM, PreTrainingModel
from llmos.training.objectives import CausalLMObjective, MLMNSPObjective

pytestmark = pytest.mark.parity


def _assert_same_training(ours, hf_class, tmp_path, our_loss, their_loss, batch):
    """Export `ours`, load it with `hf_class`, take five AdamW steps on `batch` with each:
    the losses agree and fall."""
    export_hf(ours, tmp_path)
    theirs = hf_class.from_pretrained(tmp_path, attn_implementation="eager").train()
    optimizers = [torch.optim.AdamW(m.parameters(), lr=3e-3) for m in (ours, theirs)]
    losses = ([], [])
    for _ in range(5):
        for i, (model, loss_of) in enumerate(((ours, our_loss), (theirs, their_loss))):
            loss = loss_of(model, batch)
            loss.backward()
            optimizers[i].step()
            optimizers[i].zero_grad()
            losses[i].append(loss.item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-4)
    assert losses[0][-1] < losses[0][0]


def test_bert_pretraining_steps_match_transformers(tmp_path):
    from transformers import BertForPreTraining

    config = ModelConfig.from_preset("bert-base", vocab_size=97, d_model=32, n_layers=2, n_heads=4, d_ff=64,
                                     max_seq_len=16)
    torch.manual_seed(0)
    ours = PreTrainingModel(config).train()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 97, (4, 16), generator=g)
    labels = torch.where(torch.rand(4, 16, generator=g) < 0.2, ids, -100)
    labels[:, 1] = ids[:, 1]  # at least one masked token per row
    mask = torch.ones_like(ids)
    mask[0, 12:] = 0  # one padded row
    labels[0, 12:] = -100
    batch = {"input_ids": torch.where(labels != -100, 3, ids), "attention_mask": mask,
             "token_type_ids": (torch.arange(16) >= 8).long().expand(4, 16),
             "labels": labels, "next_sentence_label": torch.tensor([0, 1, 1, 0])}
    _assert_same_training(ours, BertForPreTraining, tmp_path, MLMNSPObjective().loss,
                          lambda m, b: m(**b).loss, batch)


def test_gpt2_causal_lm_steps_match_transformers(tmp_path):
    from transformers import GPT2LMHeadModel

    config = ModelConfig.from_preset("gpt2", vocab_size=97, d_model=32, n_layers=2, n_heads=4, max_seq_len=16,
                                     dropout=0.0)
    torch.manual_seed(0)
    ours = CausalLM(config).train()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 97, (4, 16), generator=g)
    y = torch.cat([x[:, 1:], torch.full((4, 1), -100)], 1)  # transformers shifts labels = x the same way
    _assert_same_training(ours, GPT2LMHeadModel, tmp_path, CausalLMObjective().loss,
                          lambda m, b: m(b[0], labels=b[0]).loss, (x, y))

"""fill_mask: top-k candidates with softmax probabilities for every mask token of an encoder."""

import pytest
import torch

from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.generation import fill_mask
from llmos.model import MaskedLM, PreTrainingModel
from llmos.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["the cat sat on the mat", "a dog ran in the park"] * 10, kind="wordpiece",
                           vocab_size=100)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = ModelConfig.from_preset("bert-base", vocab_size=100, d_model=32, n_layers=2, n_heads=2,
                                     d_ff=64, max_seq_len=64)
    return MaskedLM(config).eval()


def test_fill_mask_returns_top_k_candidates_with_their_probabilities(model, tokenizer):
    text = "the [MASK] sat on the [MASK]"
    results = fill_mask(model, tokenizer, text, top_k=4)
    ids = tokenizer.encode(text)
    positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    with torch.no_grad():
        probs = model(torch.tensor([ids])).logits[0].softmax(-1)
    assert len(results) == 2
    for candidates, pos in zip(results, positions, strict=True):
        expected = probs[pos].topk(4)
        assert [c["token_id"] for c in candidates] == expected.indices.tolist()
        assert [c["score"] for c in candidates] == pytest.approx(expected.values.tolist(), rel=1e-5)
        top = candidates[0]
        assert top["token"] in top["sequence"] and "[MASK]" in text


def test_fill_mask_without_a_mask_token_is_an_error(model, tokenizer):
    with pytest.raises(LLMOSError, match="no mask token"):
        fill_mask(model, tokenizer, "the cat sat")
    with pytest.raises(LLMOSError, match="top_k"):
        fill_mask(model, tokenizer, "the [MASK] sat", top_k=0)


def test_fill_mask_takes_a_pretraining_model_and_reads_its_prediction_logits(model, tokenizer):
    pretraining = PreTrainingModel(model.config).eval()
    pretraining.load_state_dict(model.state_dict(), strict=False)  # the same trunk and MLM head; fresh NSP
    text = "the [MASK] sat on the [MASK]"
    assert fill_mask(pretraining, tokenizer, text, top_k=3) == fill_mask(model, tokenizer, text, top_k=3)

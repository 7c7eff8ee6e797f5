"""prepare() with tokenizers trained by llmos.tokenizer, end to end into both batch builders."""

from __future__ import annotations

import numpy as np
import torch

from llmos.data import CausalBatches, MLMNSPBatches, SpecialTokenIds, TokenShards, prepare
from llmos.tokenizer import Tokenizer


def test_prepare_trains_a_bpe_tokenizer_and_saves_it_with_the_shards(
    tmp_path, sample_text, write_text_corpus
):
    write_text_corpus(tmp_path / "corpus", 12)
    summary = prepare(
        [tmp_path / "corpus"], tmp_path / "data", vocab_size=300, val_fraction=0.2, progress=False
    )
    shards = TokenShards(tmp_path / "data")
    tok = Tokenizer.from_pretrained(shards.tokenizer_dir)
    assert shards.eos_id == tok.eos_token_id
    assert shards.vocab_size == len(tok) == summary.vocab_size
    first = shards.window(0, int(shards.document_starts()[1]))
    assert first[-1] == tok.eos_token_id
    assert tok.decode(first[:-1].tolist()).strip() in {sample_text(i) for i in range(12)}
    x, y = next(CausalBatches(shards, batch_size=2, context=16))
    assert x.shape == (2, 16) and int(x.max()) < len(tok)


def test_wordpiece_corpus_feeds_mlm_nsp_batches(tmp_path, write_text_corpus):
    write_text_corpus(tmp_path / "corpus", 8, n_words=60)
    prepare(
        [tmp_path / "corpus"],
        tmp_path / "data",
        tokenizer_kind="wordpiece",
        vocab_size=200,
        val_fraction=0.0,
        progress=False,
    )
    shards = TokenShards(tmp_path / "data")
    tok = Tokenizer.from_pretrained(shards.tokenizer_dir)
    assert tok.eos_token_id is None and shards.eos_id == tok.sep_token_id  # [SEP] separates docs
    special = SpecialTokenIds.from_tokenizer(tok)
    batches = MLMNSPBatches(shards, 4, 32, seed=0)  # special ids from the saved tokenizer
    assert batches.special == special
    batch = next(batches)
    ids = batch["input_ids"]
    assert (ids[:, 0] == tok.cls_token_id).all()
    assert ((ids == tok.sep_token_id).sum(1) == 2).all()
    assert (batch["labels"] != -100).any()
    assert (
        np.isin(
            batch["labels"][batch["labels"] != -100].numpy(), list(special.never_masked())
        ).sum()
        == 0
    )
    assert batch["token_type_ids"].dtype == torch.long

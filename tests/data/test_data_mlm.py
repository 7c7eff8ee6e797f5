"""MLMNSPBatches: pair structure, NSP labels, masking proportions, determinism, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmos.data import TokenShards, prepare
from llmos.data.mlm import MLMNSPBatches, SpecialTokenIds, document_chunks
from llmos.errors import LLMOSError
from llmos.model.heads import IGNORE_INDEX

PAD, CLS, SEP, MASK = 0, 2, 3, 4
WORDS_PER_DOC = 200


@pytest.fixture
def special(big_vocab_tokenizer) -> SpecialTokenIds:
    return SpecialTokenIds.from_tokenizer(big_vocab_tokenizer)


@pytest.fixture
def shards(tmp_path, big_vocab_tokenizer) -> TokenShards:
    """12 documents; word k of document d is w{d*200+k} (id 6 + d*200 + k): positions are unique."""
    (tmp_path / "c").mkdir()
    for d in range(12):
        words = " ".join(f"w{d * WORDS_PER_DOC + k}" for k in range(WORDS_PER_DOC))
        (tmp_path / "c" / f"{d:02d}.txt").write_text(words)
    prepare(
        [tmp_path / "c"],
        tmp_path / "data",
        tokenizer=big_vocab_tokenizer,
        val_fraction=0.0,
        shard_tokens=500,
        progress=False,
    )
    return TokenShards(tmp_path / "data")


def _document_of(token_id: int) -> int:
    return (token_id - 6) // WORDS_PER_DOC


def test_special_ids_are_read_from_the_tokenizer(special):
    assert (special.cls_id, special.sep_id, special.mask_id, special.pad_id) == (
        CLS,
        SEP,
        MASK,
        PAD,
    )
    assert special.vocab_size == 70_006
    assert {0, 1, 2, 3, 4, 5} <= special.special_ids


def test_chunks_stay_inside_documents_and_skip_eos(shards):
    starts, lengths, docs = document_chunks(shards, 29)
    assert lengths.max() == 29 and lengths.min() >= 2
    assert lengths.sum() == 12 * WORDS_PER_DOC  # every token but the EOS separators
    for start, length, doc in zip(starts, lengths, docs, strict=True):
        ids = shards.window(int(start), int(length))
        assert {_document_of(int(i)) for i in ids} == {int(doc)}


def test_pairs_are_cls_a_sep_b_sep_with_segments_and_padding(shards, special):
    batch = next(MLMNSPBatches(shards, 64, 32, seed=0, special=special))
    assert set(batch) == {
        "input_ids",
        "token_type_ids",
        "attention_mask",
        "labels",
        "next_sentence_label",
    }
    assert batch["input_ids"].shape == (64, 32) and batch["next_sentence_label"].shape == (64,)
    assert all(t.dtype == torch.long for t in batch.values())
    original = torch.where(batch["labels"] != IGNORE_INDEX, batch["labels"], batch["input_ids"])
    labels_seen = set()
    for row in range(64):
        n = int(batch["attention_mask"][row].sum())
        ids = original[row, :n].tolist()
        assert batch["attention_mask"][row, n:].sum() == 0
        assert (batch["input_ids"][row, n:] == PAD).all()
        assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 2
        sep = ids.index(SEP)
        a, b = ids[1:sep], ids[sep + 1 : -1]
        assert a and b
        types = batch["token_type_ids"][row, :n].tolist()
        assert types == [0] * (sep + 1) + [1] * (n - sep - 1)
        assert (batch["token_type_ids"][row, n:] == 0).all()
        label = int(batch["next_sentence_label"][row])
        labels_seen.add(label)
        assert all(y == x + 1 for x, y in zip(a, a[1:], strict=False))  # A is contiguous text
        assert all(y == x + 1 for x, y in zip(b, b[1:], strict=False))  # so is B
        if label == 0:  # IsNext: B continues A in the same document
            assert b[0] == a[-1] + 1
        else:  # NotNext: B comes from another document
            assert _document_of(b[0]) != _document_of(a[0])
    assert labels_seen == {0, 1}


def test_masking_and_nsp_proportions_match_bert(shards, special):
    batches = MLMNSPBatches(shards, 100, 64, seed=1, special=special)
    chosen = masked = randomized = kept = candidates = not_next = 0
    for _ in range(4):
        batch = next(batches)
        is_label = batch["labels"] != IGNORE_INDEX
        real = (batch["attention_mask"] == 1) & ~torch.isin(
            batch["input_ids"], torch.tensor([CLS, SEP])
        )
        candidates += int(real.sum())
        chosen += int(is_label.sum())
        inputs, labels = batch["input_ids"][is_label], batch["labels"][is_label]
        masked += int((inputs == MASK).sum())
        kept += int((inputs == labels).sum())
        randomized += int(((inputs != MASK) & (inputs != labels)).sum())
        assert not torch.isin(inputs[inputs != MASK], torch.tensor([0, 1, 2, 3, 5])).any()
        not_next += int(batch["next_sentence_label"].sum())
    assert abs(chosen / candidates - 0.15) < 0.01
    assert abs(masked / chosen - 0.8) < 0.04
    assert abs(randomized / chosen - 0.1) < 0.03
    assert abs(kept / chosen - 0.1) < 0.03
    assert abs(not_next / 400 - 0.5) < 0.1


def test_same_seed_same_batches_and_exact_resume(shards, special):
    reference = MLMNSPBatches(shards, 8, 24, seed=5, special=special)
    per_epoch = reference.examples_per_epoch
    expected = [next(reference) for _ in range(per_epoch // 8 + 3)]  # crosses an epoch
    first = MLMNSPBatches(shards, 8, 24, seed=5, special=special)
    got = [next(first) for _ in range(4)]
    resumed = MLMNSPBatches(shards, 8, 24, seed=5, special=special)
    resumed.load_state_dict(first.state_dict())
    got += [next(resumed) for _ in range(len(expected) - 4)]
    for e, g in zip(expected, got, strict=True):
        assert all(torch.equal(e[k], g[k]) for k in e)
    other = next(MLMNSPBatches(shards, 8, 24, seed=6, special=special))
    assert not torch.equal(other["input_ids"], expected[0]["input_ids"])


def test_tokenizer_without_mask_token_is_refused():
    from tokenizers import Tokenizer, models

    with pytest.raises(LLMOSError, match=r"\[MASK\]"):
        SpecialTokenIds.from_tokenizer(Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")))


def test_too_short_context_is_refused(shards, special):
    with pytest.raises(LLMOSError, match="context"):
        MLMNSPBatches(shards, 2, 4, special=special)


def test_examples_never_exceed_the_context(shards, special):
    batches = MLMNSPBatches(shards, 50, 7, seed=2, special=special)
    batch = next(batches)
    assert batch["input_ids"].shape == (50, 7)
    assert (batch["attention_mask"].sum(1) <= 7).all()
    assert np.all(batch["attention_mask"][:, :5].numpy() == 1)

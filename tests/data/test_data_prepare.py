"""prepare() and TokenShards: shards on disk, dtype, EOS separation, split, windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmos.data import CorpusError, TokenShards, prepare
from llmos.data.prepare import validation_mask
from llmos.data.shards import ShardError
from llmos.errors import LLMOSError

EOS = 5  # "<|endoftext|>" in the conftest tokenizers


@pytest.fixture
def make_data(write_text_corpus):
    """make_data(root, tokenizer, n_docs=20, **prepare_kwargs): a corpus in root/corpus -> root/data."""

    def make(root, tokenizer, n_docs=20, **kw):
        write_text_corpus(root / "corpus", n_docs)
        kw.setdefault("progress", False)
        return prepare([root / "corpus"], root / "data", tokenizer=tokenizer, **kw)

    return make


def test_documents_are_tokenized_and_separated_by_eos(
    tmp_path, word_tokenizer, make_data, sample_text
):
    summary = make_data(tmp_path, word_tokenizer, n_docs=6, val_fraction=0.0)
    shards = TokenShards(tmp_path / "data", "train")
    stream = shards.window(0, shards.num_tokens)
    expected = []
    for i in range(6):
        expected += word_tokenizer.encode(sample_text(i), add_special_tokens=False).ids + [EOS]
    assert stream.tolist() == expected
    assert stream.dtype == np.int64
    assert summary.tokens == {"train": len(expected), "val": 0}
    assert summary.documents == {"train": 6, "val": 0}
    assert shards.eos_id == EOS
    starts = shards.document_starts()
    assert starts.tolist() == [41 * i for i in range(6)]


def test_small_vocabulary_is_stored_as_uint16(tmp_path, word_tokenizer, make_data):
    make_data(tmp_path, word_tokenizer, n_docs=3)
    shards = TokenShards(tmp_path / "data")
    assert shards.dtype == np.uint16
    assert shards.vocab_size == word_tokenizer.get_vocab_size()
    size = sum(p.stat().st_size for p in (tmp_path / "data").glob("train_0*.bin"))
    assert size == 2 * shards.num_tokens


def test_vocabulary_over_65536_is_stored_as_uint32(tmp_path, big_vocab_tokenizer):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("w69999 w0 w65535 w12")
    prepare(
        [tmp_path / "c"],
        tmp_path / "data",
        tokenizer=big_vocab_tokenizer,
        val_fraction=0.0,
        progress=False,
    )
    shards = TokenShards(tmp_path / "data")
    assert shards.dtype == np.uint32
    assert shards.window(0, 5).tolist() == [70005, 6, 65541, 18, EOS]


def test_split_is_deterministic_by_document_and_seed(tmp_path, word_tokenizer, make_data):
    a = make_data(tmp_path / "a", word_tokenizer, n_docs=200, val_fraction=0.2, seed=3)
    b = make_data(tmp_path / "b", word_tokenizer, n_docs=200, val_fraction=0.2, seed=3)
    c = make_data(tmp_path / "c", word_tokenizer, n_docs=200, val_fraction=0.2, seed=4)
    assert a.documents == b.documents
    assert 20 <= a.documents["val"] <= 60
    for split in ("train", "val"):
        sa, sb = (
            TokenShards(tmp_path / "a" / "data", split),
            TokenShards(tmp_path / "b" / "data", split),
        )
        assert np.array_equal(sa.window(0, sa.num_tokens), sb.window(0, sb.num_tokens))
    mask3, mask4 = validation_mask(200, 0.2, 3), validation_mask(200, 0.2, 4)
    assert not np.array_equal(mask3, mask4)
    assert c.documents["val"] == int(mask4.sum())
    # Every document lands in exactly one split.
    assert a.documents["train"] + a.documents["val"] == 200


def test_validation_gets_a_document_even_from_a_tiny_corpus(tmp_path, word_tokenizer, make_data):
    summary = make_data(tmp_path, word_tokenizer, n_docs=3, val_fraction=0.001)
    assert summary.documents == {"train": 2, "val": 1}


def test_window_crosses_shard_boundaries(tmp_path, word_tokenizer, make_data):
    make_data(tmp_path / "one", word_tokenizer, n_docs=10, val_fraction=0.0)
    make_data(tmp_path / "many", word_tokenizer, n_docs=10, val_fraction=0.0, shard_tokens=17)
    one = TokenShards(tmp_path / "one" / "data")
    many = TokenShards(tmp_path / "many" / "data")
    assert len(many.index["splits"]["train"]["shards"]) == -(-many.num_tokens // 17)
    assert many.num_tokens == one.num_tokens
    for start, length in [(0, 17), (10, 30), (16, 2), (5, 100), (many.num_tokens - 40, 40)]:
        assert np.array_equal(many.window(start, length), one.window(start, length))


def test_window_outside_the_split_is_an_error(tmp_path, word_tokenizer, make_data):
    make_data(tmp_path, word_tokenizer, n_docs=2, val_fraction=0.0)
    shards = TokenShards(tmp_path / "data")
    with pytest.raises(ShardError, match="outside"):
        shards.window(shards.num_tokens - 3, 4)


def test_index_records_sources_counts_and_tokenizer(tmp_path, word_tokenizer):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "bad.txt").write_bytes(b"the \xff fox\n")
    with pytest.warns(UserWarning, match="bad.txt"):
        summary = prepare(
            [tmp_path / "corpus"], tmp_path / "data", tokenizer=word_tokenizer, progress=False
        )
    index = json.loads((tmp_path / "data" / "index.json").read_text())
    assert index["invalid_utf8"] == summary.invalid_utf8 == 1
    assert index["sources"] == [str((tmp_path / "corpus" / "bad.txt").resolve())]
    assert index["eos_id"] == EOS and index["dtype"] == "uint16"
    assert (TokenShards(tmp_path / "data").tokenizer_dir / "tokenizer.json").is_file()
    assert "invalid UTF-8 replaced: 1" in summary.line()


def test_a_tokenizer_directory_can_be_given_by_path(tmp_path, word_tokenizer, make_data):
    (tmp_path / "tok").mkdir()
    word_tokenizer.save(str(tmp_path / "tok" / "tokenizer.json"))
    first = make_data(tmp_path / "a", word_tokenizer, n_docs=4)
    second = make_data(tmp_path / "b", str(tmp_path / "tok"), n_docs=4)
    assert first.tokens == second.tokens


def test_preparing_again_replaces_the_old_shards(
    tmp_path, word_tokenizer, write_text_corpus, make_data
):
    make_data(tmp_path, word_tokenizer, n_docs=10, val_fraction=0.0, shard_tokens=20)
    write_text_corpus(tmp_path / "small", 1)
    prepare([tmp_path / "small"], tmp_path / "data", tokenizer=word_tokenizer, progress=False)
    assert [p.name for p in sorted((tmp_path / "data").glob("train_0*.bin"))] == [
        "train_000000.bin"
    ]
    assert TokenShards(tmp_path / "data").num_tokens == 41


def test_empty_corpus_is_an_error_naming_the_paths(tmp_path, word_tokenizer):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "blank.txt").write_text("\n\n   \n")
    with pytest.raises(CorpusError, match=str(tmp_path / "corpus")):
        prepare([tmp_path / "corpus"], tmp_path / "data", tokenizer=word_tokenizer, progress=False)


def test_bad_val_fraction_and_unknown_split_are_errors(
    tmp_path, word_tokenizer, write_text_corpus, make_data
):
    write_text_corpus(tmp_path / "corpus", 2)
    with pytest.raises(LLMOSError, match="val_fraction"):
        prepare(
            [tmp_path / "corpus"], tmp_path / "data", tokenizer=word_tokenizer, val_fraction=1.0
        )
    make_data(tmp_path, word_tokenizer, n_docs=2)
    with pytest.raises(ShardError, match="'test'.*train"):
        TokenShards(tmp_path / "data", "test")
    with pytest.raises(ShardError, match="not a prepared data directory"):
        TokenShards(tmp_path / "corpus")


def test_truncated_shard_is_detected(tmp_path, word_tokenizer, make_data):
    make_data(tmp_path, word_tokenizer, n_docs=3, val_fraction=0.0)
    shard = tmp_path / "data" / "train_000000.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(ShardError, match="re-run"):
        TokenShards(tmp_path / "data")

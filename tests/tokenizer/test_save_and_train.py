"""save_pretrained round trips (ours and transformers read the same ids) and trained tokenizers are ordinary tokenizer.json."""

from __future__ import annotations

import json

import pytest
import tokenizers

from llmos.tokenizer import CHATML_TEMPLATE, Tokenizer, train_tokenizer, train_tokenizer_from_files

from .conftest import CORPUS

transformers = pytest.importorskip("transformers")

PROBES = [
    "Hello world, don't panic!",
    "café naïve\nnew line",
    "the quick brown fox",
    "zzz unseen ☃",
]


@pytest.fixture(scope="module")
def trained():
    return {
        "bpe": train_tokenizer(CORPUS, kind="bpe", vocab_size=350),
        "wordpiece": train_tokenizer(CORPUS, kind="wordpiece", vocab_size=200),
        "char": train_tokenizer(CORPUS, kind="char", vocab_size=120),
    }


@pytest.mark.parity
@pytest.mark.parametrize("name", ["llama3", "qwen2", "bert"])
def test_save_pretrained_round_trips_through_ours_and_transformers(all_dirs, name, tmp_path):
    original = Tokenizer.from_pretrained(all_dirs[name])
    original.save_pretrained(tmp_path)
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    reloaded = Tokenizer.from_pretrained(tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    for text in PROBES:
        ids = original.encode(text)
        assert reloaded.encode(text) == ids == hf.encode(text)
    assert reloaded.special_tokens_map == original.special_tokens_map == hf.special_tokens_map
    assert reloaded.chat_template == original.chat_template
    assert reloaded.padding_side == original.padding_side == hf.padding_side
    assert reloaded.model_max_length == original.model_max_length == hf.model_max_length
    if original.chat_template is not None:
        chat = [{"role": "user", "content": "Hi there"}]
        assert reloaded.apply_chat_template(chat, tokenize=False) == hf.apply_chat_template(
            chat, tokenize=False
        )


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "char"])
def test_trained_tokenizers_read_back_identically_in_tokenizers_and_transformers(
    trained, kind, tmp_path
):
    tok = trained[kind]
    tok.save_pretrained(tmp_path)
    raw = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    for text in PROBES:
        ours = tok.encode(text)
        assert raw.encode(text).ids == ours == hf.encode(text)
        assert hf.decode(ours) == tok.decode(ours)
    batch = ["a b", "the quick brown fox"]
    assert dict(tok(batch, padding=True)) == dict(hf(batch, padding=True))
    assert dict(tok(batch, batch[::-1], padding=True)) == dict(hf(batch, batch[::-1], padding=True))


def test_bpe_is_byte_level_with_chatml_defaults(trained):
    tok = trained["bpe"]
    assert tok.bos_token == tok.eos_token == "<|endoftext|>"
    assert tok.pad_token == "<|pad|>"
    assert {"<|im_start|>", "<|im_end|>"} <= set(tok.all_special_tokens)
    assert tok.chat_template == CHATML_TEMPLATE
    assert tok.decode(tok.encode("zzz unseen ☃ é")) == "zzz unseen ☃ é"  # bytes never fall to <unk>
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}])
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
    assert tok.decode(ids, skip_special_tokens=True) == "user\nhi\n"
    assert len(tok) <= 350


def test_wordpiece_is_bert_style_with_cls_sep_and_segments(trained):
    tok = trained["wordpiece"]
    out = tok("Hello World", "the fox")
    assert out["input_ids"][0] == tok.cls_token_id and out["input_ids"][-1] == tok.sep_token_id
    assert out["input_ids"].count(tok.sep_token_id) == 2
    assert set(out["token_type_ids"]) == {0, 1} and out["token_type_ids"][-1] == 1
    assert tok.decode(tok.encode("Hello World"), skip_special_tokens=True) == "hello world"
    assert [tok.pad_token, tok.unk_token, tok.mask_token] == ["[PAD]", "[UNK]", "[MASK]"]


def test_char_tokenizer_has_one_token_per_character(trained):
    tok = trained["char"]
    text = "to be,\nor not"
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.convert_ids_to_tokens(ids) == list(text)
    assert tok.decode(ids) == text
    assert len(tok) == len(set("".join(CORPUS))) + 3
    assert tok.encode("☃") == [tok.unk_token_id]


def test_training_from_files_matches_training_from_strings(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    from_files = train_tokenizer_from_files([path], kind="char", vocab_size=200)
    from_text = train_tokenizer(["\n".join(CORPUS) + "\n"], kind="char", vocab_size=200)
    assert from_files.get_vocab() == from_text.get_vocab()


def test_custom_special_tokens_replace_the_defaults():
    tok = train_tokenizer(CORPUS, kind="bpe", vocab_size=300, special_tokens=["<eos>", "<sep>"])
    assert tok.eos_token == "<eos>" and tok.convert_tokens_to_ids("<sep>") == 1
    assert tok.chat_template is None and tok.pad_token is None


def test_saved_config_names_special_tokens_and_template(trained, tmp_path):
    trained["bpe"].save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|endoftext|>" and config["pad_token"] == "<|pad|>"
    assert config["chat_template"] == CHATML_TEMPLATE
    special_map = json.loads((tmp_path / "special_tokens_map.json").read_text())
    assert special_map["bos_token"] == "<|endoftext|>"

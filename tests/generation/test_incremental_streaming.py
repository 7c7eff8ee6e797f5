"""Streamed text equals the one-shot decode, for any token sequence and any kind of tokenizer,
and streaming one more token costs the same however long the text already is.

The tokenizers: a byte-level BPE over Chinese text (characters and emoji split
across tokens), a SentencePiece-style one (Metaspace spaces, byte-fallback
tokens, Llama's Replace/ByteFallback/Fuse/Strip decoder) and the two GGUF-loaded
kinds of tests/gguf_tokenizers.py. Sequences are random ids (byte tokens in any
order, special tokens anywhere) and the encodings of mixed texts.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from collecting_streamer import Collect
from gguf_tokenizers import gguf_tokenizer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llmos.errors import LLMOSError
from llmos.generation import TextStreamer
from llmos.generation.replies import TextStream
from llmos.serving.text import ServedTokenizer
from llmos.tokenizer import train_tokenizer

CHINESE = ["你好，世界！", "今天天气很好。", "我们一起学习语言模型。", "中文分词和流式输出。"] * 5
TEXTS = ["你好，世界！今天我们学习语言模型。", "混合 mixed 文本，含 emoji 😀👍🏽 和 𠀀𪚥。",
         "line one\nline two\n  indented 漢字\n\nend", "The quick brown fox. Don't panic!"]


def sentencepiece_style() -> Tokenizer:
    """Llama 2's layout: "▁" for spaces, "<0xNN>" byte tokens for what the vocabulary lacks."""
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trained.train_from_iterator(CHINESE[:4] + TEXTS[2:] * 3, trainers.BpeTrainer(vocab_size=300,
                                                                                 show_progress=False))
    spec = json.loads(trained.to_str())["model"]
    pieces = sorted(spec["vocab"], key=spec["vocab"].__getitem__)
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), *pieces]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["merges"]]
    backend = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges, byte_fallback=True,
                                   unk_token="<unk>", fuse_unk=True))
    backend.pre_tokenizer = trained.pre_tokenizer
    backend.add_special_tokens(["<unk>", "<s>", "</s>"])
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(content=" ", left=1, right=0)])
    return backend


def metaspace_decoder() -> Tokenizer:
    """A plain Metaspace decoder (no byte fallback), as some Unigram/BPE tokenizers have."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(TEXTS * 3, trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>"],
                                                               show_progress=False))
    return backend


RARE = ["😀", "👍🏽", "𠀀", "𪚥", "漢", "é", "ß"]  # characters the vocabularies lack: byte tokens
class DecodeOnly:
    """A tokenizer without a `tokenizers` backend (only encode/decode): streamed by windowed decode."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.inner.encode(text, add_special_tokens=add_special_tokens)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.inner.decode(ids, skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, token_id: int) -> str:
        return self.inner.convert_ids_to_tokens(token_id)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.inner.convert_tokens_to_ids(token)


KINDS = ["byte-level-chinese", "sentencepiece-style", "metaspace", "gguf-gpt2", "gguf-llama", "decode-only"]


@pytest.fixture(scope="module", params=KINDS)
def tokenizer(request, tmp_path_factory):
    kind = request.param
    if kind == "byte-level-chinese":
        return train_tokenizer(CHINESE, kind="bpe", vocab_size=300, min_frequency=2,
                               special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    if kind == "sentencepiece-style":
        return sentencepiece_style()
    if kind == "decode-only":
        return DecodeOnly(train_tokenizer(CHINESE, kind="bpe", vocab_size=300, min_frequency=2,
                                          special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    if kind == "metaspace":
        return metaspace_decoder()
    return gguf_tokenizer(kind.removeprefix("gguf-"), tmp_path_factory.mktemp(kind))


def vocab_size(tokenizer) -> int:
    return tokenizer.get_vocab_size() if hasattr(tokenizer, "get_vocab_size") else len(tokenizer)


def encode(tokenizer, text: str) -> list[int]:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return list(getattr(ids, "ids", ids))


def sequences(tokenizer) -> list[list[int]]:
    """Encoded texts and random ids. With "<0xNN>" byte tokens, the random ids are pieces and whole
    characters' byte tokens (one cut character at most, at the end): byte fallback turns a run of byte
    tokens that is not whole UTF-8 into U+FFFD as a group, so text already shown could change later;
    no stream can take text back, and a model writes such runs only by accident."""
    rng = random.Random(0)
    size = vocab_size(tokenizer)
    found = [encode(tokenizer, text) for text in TEXTS]
    byte_ids = {i for i in range(size) if (piece(tokenizer, i) or "").startswith("<0x")}
    if not byte_ids:
        found += [[rng.randrange(size) for _ in range(rng.randrange(1, 60))] for _ in range(40)]
        return found
    pieces = [i for i in range(size) if i not in byte_ids]
    for _ in range(40):
        ids: list[int] = []
        for _ in range(rng.randrange(1, 30)):
            ids += [rng.choice(pieces)] if rng.random() < 0.7 else encode(tokenizer, rng.choice(RARE))
        if rng.random() < 0.5:
            ids += [rng.choice(pieces), *encode(tokenizer, rng.choice([c for c in RARE if len(c) == 1]))[:-1]]
        found.append(ids)
    return found


def piece(tokenizer, token_id: int) -> str | None:
    if hasattr(tokenizer, "id_to_token"):
        return tokenizer.id_to_token(token_id)
    return tokenizer.convert_ids_to_tokens(token_id)


def one_shot(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)


def test_the_texts_really_split_characters_across_tokens(tokenizer, request):
    if request.node.callspec.params["tokenizer"] == "metaspace":
        pytest.skip("no byte tokens: characters outside the vocabulary become <unk>")
    split = [i for text in TEXTS for i in encode(tokenizer, text) if "\ufffd" in one_shot(tokenizer, [i])]
    assert split  # byte tokens or byte-level pieces: the streams below meet half characters


def test_text_streamer_streams_exactly_the_one_shot_decode(tokenizer):
    for ids in sequences(tokenizer):
        streamer = Collect(tokenizer)
        for token in ids:
            streamer.put(torch.tensor([token]))
        streamer.end()
        assert "".join(streamer.chunks) == one_shot(tokenizer, ids), ids
        assert all("\ufffd" not in chunk for chunk in streamer.chunks[:-1] if "\ufffd" not in one_shot(
            tokenizer, ids))


def test_text_streamer_given_the_prompt_at_once_streams_the_one_shot_decode(tokenizer):
    for ids in sequences(tokenizer)[:10]:
        streamer = Collect(tokenizer)
        streamer.put(torch.tensor([ids[: len(ids) // 2]]))
        for token in ids[len(ids) // 2:]:
            streamer.put(torch.tensor([token]))
        streamer.end()
        assert "".join(streamer.chunks) == one_shot(tokenizer, ids), ids


def test_served_text_stream_streams_exactly_the_one_shot_decode(tokenizer):
    if isinstance(tokenizer, DecodeOnly):
        pytest.skip("the server converts its tokenizer once (as_tokenizer), which needs a tokenizers "
                    "backend: see test_the_server_refuses_a_tokenizer_without_a_backend_by_its_type")
    served = ServedTokenizer(tokenizer)
    for ids in sequences(tokenizer):
        stream = TextStream(served, [])
        text = "".join(stream.push(token) for token in ids) + stream.flush()
        assert text == served.decode(ids), ids
        assert stream.text == text


def test_the_server_refuses_a_tokenizer_without_a_backend_by_its_type():
    inner = train_tokenizer(CHINESE, kind="bpe", vocab_size=300, min_frequency=2)
    with pytest.raises(LLMOSError, match="cannot use a DecodeOnly as a tokenizer"):
        ServedTokenizer(DecodeOnly(inner))


# ---- work per token ---------------------------------------------------------------------------


class CountingDecoder:
    """A byte-level decoder that records how many tokens each decode call was given."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.inner = decoders.ByteLevel()

    def decode_chain(self, tokens: list[str]) -> list[str]:
        self.sizes.append(len(tokens))
        return [self.inner.decode(tokens)]


@pytest.fixture()
def counted():
    """(bare tokenizers.Tokenizer with a counting decoder, the counter, 600 ids of Chinese text)."""
    backend = train_tokenizer(CHINESE, kind="bpe", vocab_size=300, min_frequency=2).backend_tokenizer
    counter = CountingDecoder()
    backend.decoder = decoders.Decoder.custom(counter)
    ids = backend.encode("".join(TEXTS[:2]) * 12, add_special_tokens=False).ids
    assert len(ids) >= 600
    counter.sizes.clear()
    return backend, counter, ids[:600]


@pytest.mark.parametrize("wrapped", [False, True], ids=["DecodeStream", "decode-only"])
def test_text_streamer_work_per_token_does_not_grow_with_the_text(counted, wrapped):
    backend, counter, ids = counted
    streamer = Collect(DecodeOnly(backend) if wrapped else backend)
    for token in ids:
        streamer.put(torch.tensor([token]))
    streamer.end()
    sizes = list(counter.sizes)
    assert "".join(streamer.chunks) == backend.decode(ids)
    assert max(sizes) <= 8  # a short window, not the text so far
    assert sum(sizes) <= 6 * len(ids)  # was ~len(ids)**2 / 2 = 180,000 decoded tokens


def test_served_text_stream_work_per_token_does_not_grow_with_the_text(counted):
    backend, counter, ids = counted
    stream = TextStream(ServedTokenizer(backend), ["never appears"])
    text = "".join(stream.push(token) for token in ids) + stream.flush()
    sizes = list(counter.sizes)
    assert text == backend.decode(ids)
    assert max(sizes) <= 8
    assert sum(sizes) <= 6 * len(ids)


# ---- the end of a stream cut mid-character ------------------------------------------------------


def test_a_stream_cut_mid_character_ends_as_decode_does_with_a_replacement_character():
    """Like transformers' TextStreamer, `end()` prints what decoding all the tokens gives: a cut
    character shows as U+FFFD (so the streamed text always equals the decoded result), never dropped."""
    tokenizer = train_tokenizer(CHINESE, kind="bpe", vocab_size=300, min_frequency=2)
    ids = encode(tokenizer, "好🙂")
    cut = ids[:-1]  # the emoji's last byte never came
    assert tokenizer.decode(cut).endswith("\ufffd")
    streamer = Collect(tokenizer)
    for token in cut:
        streamer.put(torch.tensor([token]))
    streamer.end()
    assert streamer.chunks[-1] == "\ufffd" and "".join(streamer.chunks) == tokenizer.decode(cut)
    assert isinstance(streamer, TextStreamer)

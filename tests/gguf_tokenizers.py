"""Test helper: write a tiny tokenizer into a GGUF file's metadata, the way llama.cpp's converter does.

Two kinds, both deterministic and a few hundred tokens long, so model fixtures stay small:

- "gpt2": a byte-level BPE (GPT-2 / Llama 3 / Qwen2 / SmolLM2 style) trained in-process with
  `tokenizers`, its tokens in the byte alphabet, merges listed, ChatML control tokens.
- "llama": a SentencePiece-style vocabulary (Llama 2 / Mistral style): "<unk>", "<s>", "</s>",
  the 256 byte tokens "<0x00>".."<0xFF>", "▁"-prefixed pieces with scores and no merges.
- "gemma": Gemma 3's layout: "<pad>", "<eos>", "<bos>", "<unk>", "<mask>", the turn markers,
  newline runs and runs of real spaces as user-defined tokens, the byte tokens, then pieces whose
  scores do not follow their order (Gemma's merges follow the order), and Gemma's chat template.

Usage: `add_tokenizer_metadata(writer, "gpt2")` on a `gguf.GGUFWriter`, before writing the file.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import gguf
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from llmos.tokenizer.from_gguf import GEMMA_CHAT_TEMPLATE

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "To be, or not to be: that is the question. Don't panic, it's fine.",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))  # 3",
    "The assistant answers questions about the weather in Paris and in Tokyo.",
    "Numbers like 12345 and 2024-06-01 appear in text, as do tabs\tand  double  spaces.",
] * 8

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE = 1, 2, 3, 4, 6
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]
GEMMA_TURNS = ["<start_of_turn>", "<end_of_turn>"]
GEMMA_TEMPLATE = GEMMA_CHAT_TEMPLATE  # Gemma 3's own turn format (text parts)
USER_TOKEN = "<think>"  # a user-defined token (type 4): matched whole, but not special


@cache
def _byte_level_vocab() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tokens in id order, merges) of a byte-level BPE; the first token is "<|endoftext|>"."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=360,
        min_frequency=2,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer=trainer)
    vocab = backend.get_vocab(with_added_tokens=True)
    tokens = tuple(sorted(vocab, key=vocab.__getitem__))
    merges = json.loads(backend.to_str())["model"]["merges"]  # [["Ġ", "t"], ...]
    return tokens, tuple(" ".join(pair) for pair in merges)


@cache
def _sentencepiece_pieces() -> tuple[str, ...]:
    """Pieces of a "▁"-spaced BPE in merge order (characters first), as SentencePiece would list them."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=160, min_frequency=2, show_progress=False)
    backend.train_from_iterator(CORPUS, trainer=trainer)
    vocab = backend.get_vocab()
    return tuple(sorted(vocab, key=vocab.__getitem__))


def _add_gpt2(writer: gguf.GGUFWriter) -> int:
    tokens, merges = _byte_level_vocab()
    tokens = [*tokens, *CHAT_TOKENS, USER_TOKEN]
    types = [CONTROL if t in ("<|endoftext|>", *CHAT_TOKENS) else NORMAL for t in tokens]
    types[tokens.index(USER_TOKEN)] = USER_DEFINED
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(list(merges))
    writer.add_bos_token_id(tokens.index("<|im_start|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_unk_token_id(tokens.index("<|endoftext|>"))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    return len(tokens)


def _add_llama(writer: gguf.GGUFWriter) -> int:
    pieces = [p for p in _sentencepiece_pieces() if p not in ("<unk>", "<s>", "</s>")]
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), *pieces, *CHAT_TOKENS]
    types = [UNKNOWN, CONTROL, CONTROL, *[BYTE] * 256, *[NORMAL] * len(pieces), CONTROL, CONTROL]
    # SentencePiece BPE scores a piece by its merge rank: earlier pieces merge first.
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))] + [0.0, 0.0]
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores(scores)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_space_prefix(True)
    return len(tokens)


def _add_gemma(writer: gguf.GGUFWriter) -> int:
    pieces = [p for p in _sentencepiece_pieces() if not p.startswith("<")]
    head = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[multimodal]", *GEMMA_TURNS]
    whitespace = ["\n", "\n\n", "  ", "   ", "    "]
    tokens = [*head, *whitespace, *(f"<0x{b:02X}>" for b in range(256)), *pieces]
    types = [CONTROL] * 5 + [USER_DEFINED] + [CONTROL] * 2 + [USER_DEFINED] * len(whitespace)
    types += [BYTE] * 256 + [NORMAL] * len(pieces)
    # scores that do not follow the order (a piece's place, not its score, ranks Gemma's merges)
    scores = [-1000.0] * (len(head) + len(whitespace)) + [0.0] * 256
    scores += [-float((i * 37) % len(pieces)) for i in range(len(pieces))]
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores(scores)
    writer.add_pad_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_bos_token_id(2)
    writer.add_unk_token_id(3)
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(False)
    return len(tokens)


def add_tokenizer_metadata(
    writer: gguf.GGUFWriter,
    kind: str,
    *,
    pre: str | None = "smollm",
    add_bos_token: bool | None = None,
    add_eos_token: bool | None = None,
    chat_template: str | None = CHATML_TEMPLATE,
) -> int:
    """Write a tiny tokenizer of `kind` ("gpt2" or "llama") into `writer`'s metadata; return the vocab size.

    `pre` (gpt2 kind only) is `tokenizer.ggml.pre`, which picks the split regex; None leaves it out.
    The add-BOS/EOS flags and the chat template are written only when not None.
    """
    if kind == "gpt2":
        size = _add_gpt2(writer)
        if pre is not None:
            writer.add_tokenizer_pre(pre)
    elif kind == "llama":
        size = _add_llama(writer)
    elif kind == "gemma":
        size = _add_gemma(writer)
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}; use 'gpt2', 'llama' or 'gemma'")
    if add_bos_token is not None:
        writer.add_add_bos_token(add_bos_token)
    if add_eos_token is not None:
        writer.add_add_eos_token(add_eos_token)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    return size


def gguf_tokenizer(kind: str, directory: Path):
    """The LLMOS tokenizer read back from a GGUF file in `directory` holding only this metadata."""
    from llmos.checkpoint.gguf_file import open_gguf
    from llmos.tokenizer.from_gguf import tokenizer_from_gguf

    path = directory / f"{kind}.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    add_tokenizer_metadata(writer, kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return tokenizer_from_gguf(open_gguf(path).metadata)

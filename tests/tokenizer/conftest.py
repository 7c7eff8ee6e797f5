"""Tiny tokenizer directories in the layouts real checkpoints use (Llama-3, Qwen2/ChatML, BERT),
built in-test from `tokenizers` trained on a small string corpus; configs are written by hand so the
loading code is checked against files it did not produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

CORPUS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "To be, or not to be: that is the question. Don't panic, it's fine.",
    "Whether 'tis nobler in the mind to suffer the slings and arrows of outrageous fortune,",
    "Or to take arms against a sea of troubles, and by opposing end them? 1234567 cafe café naïve",
    "The assistant answers questions about the weather in Paris and in Tokyo.\nNew lines too.",
] * 4

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

QWEN2_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(turns=0) %}
{%- for message in messages %}
    {%- set ns.turns = ns.turns + 1 %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}
    {%- elif message.role != "system" %}
        {{- raise_exception('Unknown role: ' + message.role) }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""


def _added(content: str, special: bool = True) -> dict:
    return {"content": content, "lstrip": False, "normalized": not special, "rstrip": False,
            "single_word": False, "special": special}  # fmt: skip


def _write(
    directory: Path, backend: Tokenizer, config: dict, special_map: dict | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    backend.save(str(directory / "tokenizer.json"))
    decoder = {
        str(i): _added(t.content, t.special) for i, t in backend.get_added_tokens_decoder().items()
    }
    config = {"added_tokens_decoder": decoder, **config}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    if special_map is not None:
        (directory / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2))
    return directory


def _byte_bpe(specials: list[str], normalizer=None) -> Tokenizer:
    backend = Tokenizer(models.BPE())
    if normalizer is not None:
        backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)  # fmt: skip
    backend.train_from_iterator(CORPUS, trainer=trainer)
    return backend


@pytest.fixture(scope="session")
def llama3_dir(tmp_path_factory) -> Path:
    specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    backend = _byte_bpe([])
    backend.add_special_tokens(specials)
    bos = backend.token_to_id("<|begin_of_text|>")
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", bos)],
            ),
        ]
    )
    config = {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "chat_template": LLAMA3_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return _write(tmp_path_factory.mktemp("llama3"), backend, config)


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory) -> Path:
    backend = _byte_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], normalizers.NFC())
    backend.post_processor = None  # Qwen2's tokenizer adds nothing around the text
    directory = tmp_path_factory.mktemp("qwen2")
    config = {
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "errors": "replace",
        "model_max_length": 32768,
        "padding_side": "left",
        "split_special_tokens": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    _write(directory, backend, config)
    # "<tool_call>" exists only in tokenizer_config.json's added_tokens_decoder, as a plain added token.
    data = json.loads((directory / "tokenizer_config.json").read_text())
    data["added_tokens_decoder"][str(len(data["added_tokens_decoder"]) + 1000)] = _added(
        "<tool_call>", False
    )
    (directory / "tokenizer_config.json").write_text(json.dumps(data))
    (directory / "chat_template.jinja").write_text(QWEN2_TEMPLATE)
    return directory


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory) -> Path:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    backend.train_from_iterator(
        CORPUS,
        trainer=trainers.WordPieceTrainer(
            vocab_size=300, special_tokens=specials, show_progress=False
        ),
    )
    backend.post_processor = processors.BertProcessing(
        ("[SEP]", backend.token_to_id("[SEP]")), ("[CLS]", backend.token_to_id("[CLS]"))
    )
    config = {
        "do_lower_case": True,
        "model_max_length": 12,
        "clean_up_tokenization_spaces": True,
        "tokenizer_class": "BertTokenizer",
    }
    special_map = {
        name: {"content": tok, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
        for name, tok in [("pad_token", "[PAD]"), ("unk_token", "[UNK]"), ("cls_token", "[CLS]"),
                          ("sep_token", "[SEP]"), ("mask_token", "[MASK]")]
    }  # fmt: skip
    return _write(tmp_path_factory.mktemp("bert"), backend, config, special_map)


@pytest.fixture(scope="session")
def all_dirs(llama3_dir, qwen2_dir, bert_dir) -> dict[str, Path]:
    return {"llama3": llama3_dir, "qwen2": qwen2_dir, "bert": bert_dir}

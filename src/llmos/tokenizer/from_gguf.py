"""Layer 3 (formats): build a `Tokenizer` from the tokenizer a GGUF file describes in its metadata.

A GGUF file carries no tokenizer.json; llama.cpp stores the vocabulary, merges, scores, token
types and special-token ids as metadata (`tokenizer.ggml.*`). This module rebuilds the
`tokenizers` pipeline those describe, the way transformers does when it loads a tokenizer with
`gguf_file=`, so the ids are the same:

- `tokenizer.ggml.model == "gpt2"`: byte-level BPE from the merges; `tokenizer.ggml.pre` picks
  the split regex (Llama 3, Qwen2, GPT-4o families), anything else uses GPT-2's.
- `tokenizer.ggml.model == "llama"`: SentencePiece-style BPE ("▁" for spaces, byte fallback to
  the "<0xNN>" tokens), merges from the file or, as usual, derived from the piece scores. Two
  architectures differ, as transformers builds them: Gemma (`gemma`, `gemma2`, `gemma3`) spells
  runs of spaces with real spaces in the file, ranks its merges by the order of the vocabulary
  (its scores do not follow it), adds no prefix space and turns spaces into "▁" in a
  normalizer; Phi-3 puts its "▁" prefix on every stretch of text between special tokens.

A Gemma file without a chat template (the base models') gets Gemma's own turn format
(`GEMMA_CHAT_TEMPLATE`), as llama.cpp picks a built-in template from the vocabulary; other
files' templates are exactly what they carry.

Control tokens become special added tokens and user-defined ones plain added tokens, so both
are matched whole in text. It takes the plain metadata dict (as `open_gguf(path).metadata`
gives it), so the tokenizer package does not depend on the checkpoint package.

Where transformers would invent a token the file does not have, we do not: a byte-level token
that is control, user-defined or a named special token keeps its spelling instead of being
re-spelled in the byte alphabet (llama.cpp matches such tokens whole; transformers would re-add
the named ones as new ids past the vocabulary), and GPT-2's "<|endoftext|>" and Llama's
"<unk>"/"<s>"/"</s>" defaults are marked special only when the vocabulary has them.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as BackendTokenizer

from llmos.tokenizer.files import TokenizerFilesError, TokenizerSettings
from llmos.tokenizer.token_bytes import byte_alphabet
from llmos.tokenizer.tokenizer import Tokenizer

SUPPORTED_MODELS = {
    "gpt2": "byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM2)",
    "llama": "SentencePiece-style BPE (Llama 2, Mistral, Gemma, Phi-3)",
}
GEMMA_ARCHITECTURES = ("gemma", "gemma2", "gemma3")

# Gemma's turn format (the text part of its instruction-tuned models' template): "user" and "model"
# turns between <start_of_turn> and <end_of_turn>, a system message folded into the first user turn.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

CONTROL, USER_DEFINED = 3, 4  # llama.cpp token types (1 normal, 2 unknown, 5 unused, 6 byte)
_SPECIAL_TOKEN_IDS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
}
# Tokens the transformers class behind each kind treats as special when present.
_DEFAULT_SPECIALS = {"gpt2": ("<|endoftext|>",), "llama": ("<unk>", "<s>", "</s>"),
                     "gemma": ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")}

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN35_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TEKKEN_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT4O_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# `tokenizer.ggml.pre` -> split regex, for the values transformers knows; others split like GPT-2.
PRE_TOKENIZER_SPLITS = {
    **dict.fromkeys(
        ("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
         "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe"),
        _LLAMA3_SPLIT,
    ),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"), _QWEN2_SPLIT),
    "qwen35": _QWEN35_SPLIT,
    "tekken": _TEKKEN_SPLIT,
    **dict.fromkeys(("gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"), _GPT4O_SPLIT),
}  # fmt: skip


def _require(metadata: dict[str, Any], key: str) -> Any:
    if key not in metadata or metadata[key] is None:
        raise TokenizerFilesError(
            f"GGUF metadata has no {key!r}; a GGUF tokenizer needs it (the file is incomplete)"
        )
    return metadata[key]


def _token_list(metadata: dict[str, Any], key: str) -> list[str]:
    value = _require(metadata, key)
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise TokenizerFilesError(f"GGUF metadata {key!r} should be a list of strings")
    if key == "tokenizer.ggml.tokens" and not value:
        raise TokenizerFilesError(f"GGUF metadata {key!r} is empty; the vocabulary has no tokens")
    return list(value)


def _flag(metadata: dict[str, Any], key: str) -> bool | None:
    value = metadata.get(key)
    return None if value is None else bool(value)


def _token_types(metadata: dict[str, Any], n_tokens: int) -> list[int]:
    """One llama.cpp token type per token; all normal (1) when the file gives none."""
    types = metadata.get("tokenizer.ggml.token_type")
    if not types:
        return [1] * n_tokens
    if len(types) != n_tokens:
        raise TokenizerFilesError(
            f"GGUF metadata 'tokenizer.ggml.token_type' has {len(types)} entries for {n_tokens} "
            "tokens; there should be one type per token"
        )
    return [int(t) for t in types]


def _special_tokens(metadata: dict[str, Any], tokens: list[str]) -> dict[str, str]:
    """{"bos_token": "<s>", ...} from the special-token ids the file gives."""
    named = {}
    for name, key in _SPECIAL_TOKEN_IDS.items():
        token_id = metadata.get(key)
        if token_id is None:
            continue
        if not isinstance(token_id, int) or not 0 <= token_id < len(tokens):
            raise TokenizerFilesError(
                f"GGUF metadata {key!r} is {token_id!r}, not an id in the vocabulary "
                f"(0..{len(tokens) - 1})"
            )
        named[name] = tokens[token_id]
    return named


def _split_merges(merges: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for merge in merges:
        parts = merge.split(" ")
        if len(parts) != 2:
            raise TokenizerFilesError(
                f"GGUF merge {merge!r} is not two tokens separated by one space"
            )
        pairs.append((parts[0], parts[1]))
    return pairs


def _merges_from_scores(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """SentencePiece BPE files list no merges: every split of a piece into two pieces of the
    vocabulary is a merge, ranked by the piece's score (higher first), then by the lengths of its
    halves; among one piece's splits, by the halves' ids."""
    ids = {token: index for index, token in enumerate(tokens)}
    ranked = []
    for piece, score in dict(zip(tokens, scores, strict=True)).items():
        halves = [(piece[:k], piece[k:]) for k in range(1, len(piece))]
        halves = sorted(
            ((left, right) for left, right in halves if left in ids and right in ids),
            key=lambda pair: (ids[pair[0]], ids[pair[1]]),
        )
        ranked.extend((score, left, right) for left, right in halves)
    ranked.sort(key=lambda m: (m[0], len(m[1]), len(m[2])), reverse=True)  # stable: ties keep order
    return [(left, right) for _, left, right in ranked]


def _bpe(vocab: dict[str, int], merges: list[tuple[str, str]], **options: Any) -> models.BPE:
    try:
        return models.BPE(vocab=vocab, merges=merges, dropout=None, **options)
    except Exception as exc:  # the Rust side raises plain Exception for merges outside the vocab
        raise TokenizerFilesError(
            f"GGUF vocabulary and merges do not fit together: {exc}"
        ) from None


def _byte_level_backend(
    metadata: dict[str, Any], tokens: list[str], keep_spelling: set[str]
) -> BackendTokenizer:
    """GPT-2-style BPE over bytes. Tokens not written in the byte alphabet (raw text) are
    re-spelled in it, except those in `keep_spelling`, which are matched whole as added tokens."""
    spelling = byte_alphabet()
    alphabet = set(spelling.values())

    def spelled(token: str) -> str:
        if token in keep_spelling or set(token) <= alphabet:
            return token
        return "".join(spelling[byte] for byte in token.encode("utf-8"))

    vocab = {spelled(token): index for index, token in enumerate(tokens)}
    merges = _split_merges(_token_list(metadata, "tokenizer.ggml.merges"))
    backend = BackendTokenizer(
        _bpe(vocab, merges, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    )
    split = PRE_TOKENIZER_SPLITS.get(metadata.get("tokenizer.ggml.pre"))
    if split is None:
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    backend.decoder = decoders.ByteLevel()
    return backend


def _sentencepiece_backend(metadata: dict[str, Any], tokens: list[str], architecture: str) -> BackendTokenizer:
    """Llama-2-style BPE: "▁" marks spaces (one is put before the text), unknown characters
    fall back to their UTF-8 bytes as "<0xNN>" tokens, and decoding undoes both. Gemma and
    Phi-3 differ as the module docstring says."""
    gemma = architecture in GEMMA_ARCHITECTURES
    if gemma:  # runs of spaces stored as spaces; merges ranked by their place in the vocabulary
        tokens = ["▁" * len(t) if " " in t and not t.strip() else t for t in tokens]
    if metadata.get("tokenizer.ggml.merges") is not None:
        merges = _split_merges(_token_list(metadata, "tokenizer.ggml.merges"))
    elif gemma:
        merges = _merges_from_scores(tokens, [-float(i) for i in range(len(tokens))])
    else:
        scores = _require(metadata, "tokenizer.ggml.scores")
        if len(scores) != len(tokens):
            raise TokenizerFilesError(
                f"GGUF metadata 'tokenizer.ggml.scores' has {len(scores)} entries for "
                f"{len(tokens)} tokens; there should be one score per token"
            )
        merges = _merges_from_scores(tokens, [float(s) for s in scores])
    vocab = {token: index for index, token in enumerate(tokens)}
    unknown = {"unk_token": "<unk>"} if gemma and "<unk>" in vocab else {}
    backend = BackendTokenizer(_bpe(vocab, merges, fuse_unk=True, byte_fallback=True, **unknown))
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if gemma:
        backend.normalizer = normalizers.Replace(" ", "▁")
        backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
        backend.decoder = decoders.Sequence(steps)
        return backend
    if architecture == "phi3":
        backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    else:
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    backend.decoder = decoders.Sequence([*steps, decoders.Strip(content=" ", left=1, right=0)])
    return backend


def _register_added_tokens(
    backend: BackendTokenizer,
    kind: str,
    tokens: list[str],
    token_types: list[int],
    named: dict[str, str],
) -> None:
    """Mark the tokens that must be matched whole: the kind's default specials, control tokens and
    the named special tokens as special, user-defined tokens as plain added tokens. The first
    role a token gets is kept, in transformers' order; none of them gets a new id."""
    vocab = backend.get_vocab(with_added_tokens=False)
    control = [t for t, kind_of in zip(tokens, token_types, strict=True) if kind_of == CONTROL]
    user_defined = [
        t for t, kind_of in zip(tokens, token_types, strict=True) if kind_of == USER_DEFINED
    ]
    roles: dict[str, bool] = {}  # token -> special?
    for token, special in [
        *((t, True) for t in _DEFAULT_SPECIALS[kind]),
        *((t, True) for t in control),
        *((t, False) for t in user_defined),
        *((t, True) for t in named.values()),
    ]:
        if token in vocab:
            roles.setdefault(token, special)
    added = {t: AddedToken(t, normalized=False, special=special) for t, special in roles.items()}
    backend.add_special_tokens([added[t] for t, special in roles.items() if special])
    backend.add_tokens([added[t] for t, special in roles.items() if not special])


def tokenizer_from_gguf(metadata: dict[str, Any]) -> Tokenizer:
    """The tokenizer a GGUF file's metadata describes, giving the ids transformers gives for it.

    Raises `TokenizerFilesError` for a tokenizer kind other than "gpt2" or "llama" and for
    missing or malformed `tokenizer.ggml.*` keys.
    """
    kind = _require(metadata, "tokenizer.ggml.model")
    supported = ", ".join(f"{name!r} ({what})" for name, what in SUPPORTED_MODELS.items())
    if kind not in SUPPORTED_MODELS:
        raise TokenizerFilesError(
            f"GGUF tokenizer.ggml.model {kind!r} is not supported; supported: {supported}"
        )
    architecture = str(metadata.get("general.architecture", ""))
    tokens = _token_list(metadata, "tokenizer.ggml.tokens")
    token_types = _token_types(metadata, len(tokens))
    named = _special_tokens(metadata, tokens)
    gemma = kind == "llama" and architecture in GEMMA_ARCHITECTURES
    if gemma and "<mask>" in tokens:  # Gemma's tokenizer names its mask token
        named["mask_token"] = "<mask>"

    if kind == "gpt2":
        whole = (CONTROL, USER_DEFINED)
        keep = {t for t, kind_of in zip(tokens, token_types, strict=True) if kind_of in whole}
        backend = _byte_level_backend(metadata, tokens, keep | set(named.values()))
    else:
        backend = _sentencepiece_backend(metadata, tokens, architecture)
    _register_added_tokens(backend, "gemma" if gemma else kind, tokens, token_types, named)

    add_bos = _flag(metadata, "tokenizer.ggml.add_bos_token")
    if add_bos is None and kind == "llama":
        add_bos = True  # llama.cpp adds BOS to a SentencePiece vocabulary unless told otherwise
    template = metadata.get("tokenizer.chat_template")
    if template is None and gemma and "<start_of_turn>" in tokens:
        template = GEMMA_CHAT_TEMPLATE
    settings = TokenizerSettings(
        special_tokens=named,
        chat_template=template if isinstance(template, str) else None,
        add_bos_token=add_bos,
        add_eos_token=_flag(metadata, "tokenizer.ggml.add_eos_token"),
        padding_side="left" if gemma else "right",  # as transformers' GemmaTokenizer
    )
    return Tokenizer(backend, settings)

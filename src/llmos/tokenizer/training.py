"""Layer 3 (formats): train a new tokenizer (byte-level BPE, BERT WordPiece or characters).

All three are ordinary `tokenizers` pipelines, so the tokenizer.json they save
loads in `tokenizers`, in transformers and in `Tokenizer.from_pretrained`:

- "bpe": GPT-2 style byte-level BPE with `<|endoftext|>` (bos = eos), `<|pad|>`
  and the ChatML markers `<|im_start|>`/`<|im_end|>` plus a ChatML chat
  template, so a model pretrained from scratch can be chatted with after SFT;
- "wordpiece": BERT style, lowercased, `[CLS] A [SEP] B [SEP]` with token types;
- "char": one token per distinct character (a WordLevel model over a
  pre-tokenizer that isolates every character), for tiny textbook models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as BackendTokenizer

from llmos.errors import LLMOSError
from llmos.tokenizer.chat_template import CHATML_TEMPLATE
from llmos.tokenizer.files import TokenizerSettings
from llmos.tokenizer.tokenizer import Tokenizer

TOKENIZER_KINDS = ("bpe", "wordpiece", "char")

DEFAULT_SPECIAL_TOKENS = {
    "bpe": ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"],
    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "char": ["<|endoftext|>", "<|pad|>", "<|unk|>"],
}

# Which well-known token plays which role; roles may share a token (GPT-2's bos = eos).
_ROLES = {
    "<|endoftext|>": ("bos_token", "eos_token"),
    "<|pad|>": ("pad_token",),
    "<|unk|>": ("unk_token",),
    "[PAD]": ("pad_token",),
    "[UNK]": ("unk_token",),
    "[CLS]": ("cls_token",),
    "[SEP]": ("sep_token",),
    "[MASK]": ("mask_token",),
}


class TokenizerTrainingError(LLMOSError):
    """A corpus or setting a tokenizer cannot be trained from."""


class _CorpusStream:
    """Passes texts through to the trainer while counting them and their characters."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._texts = texts
        self.non_empty = 0

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            if not isinstance(text, str):
                raise TokenizerTrainingError(
                    f"training texts must be strings, got {type(text).__name__}"
                )
            if text.strip():
                self.non_empty += 1
            yield text


def _settings_for(kind: str, special_tokens: list[str]) -> TokenizerSettings:
    settings = TokenizerSettings()
    for token in special_tokens:
        roles = _ROLES.get(token, ())
        for role in roles:
            settings.special_tokens.setdefault(role, token)
        if not roles:
            settings.extra_special_tokens.append(token)
    if kind in ("bpe", "char") and "eos_token" not in settings.special_tokens and special_tokens:
        # The first special token ends documents when no well-known one was given.
        settings.special_tokens.setdefault("bos_token", special_tokens[0])
        settings.special_tokens["eos_token"] = special_tokens[0]
    if "<|im_start|>" in special_tokens and "<|im_end|>" in special_tokens:
        settings.chat_template = CHATML_TEMPLATE
    if kind == "wordpiece":
        settings.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
        settings.clean_up_tokenization_spaces = True
    else:
        settings.model_input_names = ["input_ids", "attention_mask"]
    return settings


def _train_bpe(
    corpus: _CorpusStream, vocab_size: int, specials: list[str], min_frequency: int
) -> BackendTokenizer:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(specials):
        raise TokenizerTrainingError(
            f"vocab_size {vocab_size} is below the {len(alphabet)} byte symbols + {len(specials)} special "
            f"tokens a byte-level BPE needs; use at least {len(alphabet) + len(specials)}"
        )
    backend = BackendTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    return backend


def _train_wordpiece(
    corpus: _CorpusStream, vocab_size: int, specials: list[str], min_frequency: int
) -> BackendTokenizer:
    unk = "[UNK]" if "[UNK]" in specials else None
    if unk is None:
        raise TokenizerTrainingError(
            f"a wordpiece tokenizer needs '[UNK]' among its special tokens, got {specials}"
        )
    backend = BackendTokenizer(models.WordPiece(unk_token=unk))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    if "[CLS]" in specials and "[SEP]" in specials:
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[(t, backend.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
        )
    return backend


def _train_char(corpus: _CorpusStream, vocab_size: int, specials: list[str]) -> BackendTokenizer:
    counts: Counter[str] = Counter()
    for text in corpus:
        counts.update(text)
    characters = sorted(c for c in counts if c not in specials)
    if vocab_size < len(characters) + len(specials):
        raise TokenizerTrainingError(
            f"vocab_size {vocab_size} is below the {len(characters)} distinct characters + {len(specials)} "
            f"special tokens of this corpus; use at least {len(characters) + len(specials)}"
        )
    vocab = {token: index for index, token in enumerate([*specials, *characters])}
    unk = next((t for t in specials if "unk" in t.lower()), None)
    backend = BackendTokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    # Every character, newlines included, is its own pre-token; decoding glues them back together.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return backend


def train_tokenizer(
    texts: Iterable[str],
    kind: str = "bpe",
    vocab_size: int = 8192,
    special_tokens: list[str] | None = None,
    min_frequency: int = 2,
) -> Tokenizer:
    """Train a tokenizer of `kind` ("bpe", "wordpiece" or "char") on `texts`."""
    if kind not in TOKENIZER_KINDS:
        raise TokenizerTrainingError(
            f"unknown tokenizer kind {kind!r}; valid kinds: {', '.join(TOKENIZER_KINDS)}"
        )
    if isinstance(texts, str):
        raise TokenizerTrainingError(
            "texts must be an iterable of strings, not one string; wrap it in a list"
        )
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise TokenizerTrainingError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if min_frequency < 1:
        raise TokenizerTrainingError(f"min_frequency must be at least 1, got {min_frequency}")
    specials = list(DEFAULT_SPECIAL_TOKENS[kind] if special_tokens is None else special_tokens)
    if len(set(specials)) != len(specials):
        raise TokenizerTrainingError(f"special tokens must be distinct, got {specials}")

    corpus = _CorpusStream(texts)
    if kind == "bpe":
        backend = _train_bpe(corpus, vocab_size, specials, min_frequency)
    elif kind == "wordpiece":
        backend = _train_wordpiece(corpus, vocab_size, specials, min_frequency)
    else:
        backend = _train_char(corpus, vocab_size, specials)
    if corpus.non_empty == 0:
        raise TokenizerTrainingError(
            "the training corpus is empty: give at least one non-blank text"
        )
    if backend.get_vocab_size() > vocab_size:
        raise TokenizerTrainingError(
            f"vocab_size {vocab_size} is below the corpus alphabet + special tokens "
            f"({backend.get_vocab_size()} symbols); raise vocab_size"
        )
    backend.add_special_tokens(
        specials
    )  # marks them special so decode(skip_special_tokens=True) drops them
    return Tokenizer(backend, _settings_for(kind, specials))


def _read_lines(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            yield from handle


def train_tokenizer_from_files(
    paths: Iterable[str | Path],
    kind: str = "bpe",
    vocab_size: int = 8192,
    special_tokens: list[str] | None = None,
    min_frequency: int = 2,
) -> Tokenizer:
    """Train on UTF-8 text files, streamed line by line (newlines kept, so char vocabularies include them)."""
    files = [Path(p) for p in paths]
    if not files:
        raise TokenizerTrainingError("no training files given; pass one or more UTF-8 text files")
    for path in files:
        if not path.is_file():
            raise TokenizerTrainingError(
                f"training file {str(path)!r} does not exist or is not a file"
            )
    return train_tokenizer(_read_lines(files), kind, vocab_size, special_tokens, min_frequency)

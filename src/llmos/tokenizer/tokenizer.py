"""Layer 3 (formats): `Tokenizer`, the Hugging Face tokenizer API over the `tokenizers` library.

Encoding, decoding, padding and truncation are done by the Rust `tokenizers`
pipeline loaded from tokenizer.json; this class adds what transformers adds on
top (named special tokens, padding/truncation sides, model_max_length, chat
templates, the tokenizer_config.json files) and nothing else, so ids, masks and
rendered chats match `PreTrainedTokenizerFast` built from the same directory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import AddedToken, processors
from tokenizers import Tokenizer as BackendTokenizer

from llmos.errors import LLMOSError
from llmos.tokenizer.chat_template import render_chat, select_template
from llmos.tokenizer.encoding import BatchEncoding, to_tensor
from llmos.tokenizer.files import (
    LARGE_INTEGER,
    TokenizerSettings,
    read_tokenizer_dir,
    write_tokenizer_dir,
)
from llmos.tokenizer.special_tokens import TokenizerAttributes

if TYPE_CHECKING:  # only in annotations; tensors come from encoding.to_tensor
    import torch

_PADDING = {
    False: None,
    "do_not_pad": None,
    True: "longest",
    "longest": "longest",
    "max_length": "max_length",
}
_TRUNCATION = {
    None: None,
    False: None,
    "do_not_truncate": None,
    True: "longest_first",
    "longest_first": "longest_first",
    "only_first": "only_first",
    "only_second": "only_second",
}


def _clean_up_tokenization(text: str) -> str:
    """Undo the spaces WordPiece decoding puts before punctuation and contractions (BERT's cleanup)."""
    for before, after in (
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
        (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ):  # fmt: skip
        text = text.replace(before, after)
    return text


def _as_id_list(ids: Any) -> list[int]:
    """A list, tuple, 0/1-D tensor or numpy array of ids -> list[int]."""
    if isinstance(ids, int):
        return [ids]
    if hasattr(ids, "tolist"):  # torch tensors and numpy arrays
        if getattr(ids, "ndim", 1) > 1:
            raise LLMOSError(
                f"decode takes one sequence but got an array of shape {tuple(ids.shape)}; use batch_decode"
            )
        ids = ids.tolist()
        return [ids] if isinstance(ids, int) else [int(i) for i in ids]
    if isinstance(ids, (list, tuple)):
        if ids and isinstance(ids[0], (list, tuple)):
            raise LLMOSError("decode takes one sequence but got a list of lists; use batch_decode")
        return [int(i) for i in ids]
    raise LLMOSError(
        f"token ids must be a list, tensor or numpy array of ints, got {type(ids).__name__}"
    )


class Tokenizer(TokenizerAttributes):
    """A fast tokenizer with the transformers API: `tok(texts, padding=True)`, `decode`, `apply_chat_template`."""

    def __init__(
        self, backend: BackendTokenizer, settings: TokenizerSettings | None = None
    ) -> None:
        self._backend = backend
        self._settings = settings or TokenizerSettings()
        self._lock = threading.Lock()  # padding/truncation are set on the shared backend per call
        for side_name in ("padding_side", "truncation_side"):
            self._check_side(side_name, getattr(self._settings, side_name))
        self._add_missing_tokens()
        self._maybe_rebuild_post_processor()

    # ---- construction ------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Tokenizer:
        """Load a Hugging Face tokenizer directory (tokenizer.json + tokenizer_config.json)."""
        backend, settings = read_tokenizer_dir(directory)
        return cls(backend, settings)

    def save_pretrained(self, directory: str | Path) -> list[Path]:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into `directory`."""
        with self._lock:
            self._backend.no_padding()
            self._backend.no_truncation()
            return write_tokenizer_dir(directory, self._backend, self._settings)

    def _add_missing_tokens(self) -> None:
        """Like transformers: added_tokens_decoder entries and named special tokens absent from the vocab are added."""
        vocab = self._backend.get_vocab()
        missing = [t for t in self._settings.added_tokens if t.content not in vocab]
        named = list(self._settings.special_tokens.values()) + self._settings.extra_special_tokens
        for content in named:
            if content not in vocab and all(t.content != content for t in missing):
                missing.append(AddedToken(content, special=True, normalized=False))
        if missing:
            self._backend.add_tokens(missing)

    def _maybe_rebuild_post_processor(self) -> None:
        """Mirror transformers: explicit add_bos/eos_token flags (or no post-processor) define the template."""
        s = self._settings
        explicit = s.add_bos_token is not None or s.add_eos_token is not None
        if not explicit and self._backend.post_processor is not None:
            return
        add_bos = bool(s.add_bos_token) and self.bos_token is not None
        add_eos = bool(s.add_eos_token) and self.eos_token is not None
        bos, eos = self.bos_token, self.eos_token
        single = f"{(bos + ':0 ') if add_bos else ''}$A:0{(' ' + eos + ':0') if add_eos else ''}"
        pair = f"{single}{(' ' + bos + ':1') if add_bos else ''} $B:1{(' ' + eos + ':1') if add_eos else ''}"
        specials = []
        if add_bos:
            specials.append((bos, self.bos_token_id))
        if add_eos:
            specials.append((eos, self.eos_token_id))
        self._backend.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=specials
        )

    @property
    def backend_tokenizer(self) -> BackendTokenizer:
        """The underlying `tokenizers.Tokenizer` (for data pipelines that batch-encode directly)."""
        return self._backend

    @property
    def clean_up_tokenization_spaces(self) -> bool:
        """Whether `decode` rewrites spaces before punctuation after decoding (never for BPE)."""
        return self._settings.clean_up_tokenization_spaces and type(self._backend.model).__name__ != "BPE"

    # ---- tokens <-> ids ----------------------------------------------------------------------

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | None | list[int | None]:
        """Token(s) -> id(s); unknown tokens map to the unk id (None when there is no unk token)."""
        if isinstance(tokens, str):
            found = self._backend.token_to_id(tokens)
            return found if found is not None else self.unk_token_id
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(
        self, ids: int | Sequence[int], skip_special_tokens: bool = False
    ) -> str | list[str]:
        if isinstance(ids, int):
            return self._backend.id_to_token(ids)
        special = set(self.all_special_ids) if skip_special_tokens else set()
        return [
            self._backend.id_to_token(int(i)) for i in _as_id_list(ids) if int(i) not in special
        ]

    def tokenize(
        self, text: str, text_pair: str | None = None, add_special_tokens: bool = False
    ) -> list[str]:
        return self._backend.encode(text, text_pair, add_special_tokens=add_special_tokens).tokens

    # ---- encoding ----------------------------------------------------------------------------

    def _strategies(
        self, padding: Any, truncation: Any, max_length: int | None
    ) -> tuple[str | None, str | None, int | None]:
        """Resolve padding/truncation/max_length exactly as transformers does."""
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"  # transformers: max_length alone turns truncation on
        try:
            pad = _PADDING[padding]
            trunc = _TRUNCATION[truncation]
        except (KeyError, TypeError):
            raise LLMOSError(
                f"padding={padding!r} / truncation={truncation!r} not understood; padding is one of "
                f"{list(_PADDING)}, truncation one of {list(_TRUNCATION)}"
            ) from None
        if max_length is None:
            large = self.model_max_length > LARGE_INTEGER
            if pad == "max_length":
                if large:
                    raise LLMOSError(
                        "padding='max_length' needs max_length: this tokenizer has no model_max_length"
                    )
                max_length = self.model_max_length
            if trunc is not None:
                trunc = None if large else trunc
                max_length = None if large else self.model_max_length
        if pad is not None and (self.pad_token is None or self.pad_token_id is None):
            raise LLMOSError(
                "asked to pad but this tokenizer has no pad token; set one, e.g. "
                "tokenizer.pad_token = tokenizer.eos_token"
            )
        return pad, trunc, max_length

    def _encode_batch(
        self,
        texts: list[str],
        pairs: list[str] | None,
        add_special_tokens: bool,
        padding: str | None,
        truncation: str | None,
        max_length: int | None,
    ) -> list:
        inputs = list(zip(texts, pairs, strict=True)) if pairs is not None else texts
        with self._lock:
            if truncation is None:
                self._backend.no_truncation()
            else:
                self._backend.enable_truncation(
                    max_length, stride=0, strategy=truncation, direction=self.truncation_side
                )
            if padding is None:
                self._backend.no_padding()
            else:
                self._backend.enable_padding(
                    direction=self.padding_side,
                    pad_id=self.pad_token_id,
                    pad_type_id=0,
                    pad_token=self.pad_token,
                    length=max_length if padding == "max_length" else None,
                )
            try:
                return self._backend.encode_batch(inputs, add_special_tokens=add_special_tokens)
            except Exception as exc:  # e.g. truncation that cannot fit the special tokens
                raise LLMOSError(f"tokenizer could not encode the input: {exc}") from None
            finally:
                self._backend.no_truncation()
                self._backend.no_padding()

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool = True,
        return_token_type_ids: bool | None = None,
        add_special_tokens: bool = True,
    ) -> BatchEncoding:
        """Encode one text (lists of ids) or a batch (lists of lists), optionally as text pairs."""
        batched = not isinstance(text, str)
        texts = list(text) if batched else [text]
        if not all(isinstance(t, str) for t in texts):
            raise LLMOSError("text must be a string or a list of strings")
        pairs = None
        if text_pair is not None:
            pairs = [text_pair] if isinstance(text_pair, str) else list(text_pair)
            if len(pairs) != len(texts):
                raise LLMOSError(
                    f"got {len(texts)} texts but {len(pairs)} text pairs; they must match"
                )
        pad, trunc, max_length = self._strategies(padding, truncation, max_length)
        encodings = self._encode_batch(texts, pairs, add_special_tokens, pad, trunc, max_length)

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        fields: dict[str, list] = {"input_ids": [e.ids for e in encodings]}
        if return_token_type_ids:
            fields["token_type_ids"] = [e.type_ids for e in encodings]
        if return_attention_mask:
            fields["attention_mask"] = [e.attention_mask for e in encodings]
        if not batched:
            fields = {k: v[0] for k, v in fields.items()}
        result = BatchEncoding(fields, encodings)
        return result.convert_to_tensors(return_tensors)

    def encode(
        self,
        text: str,
        text_pair: str | None = None,
        add_special_tokens: bool = True,
        return_tensors: str | None = None,
        truncation: bool | str | None = None,
        max_length: int | None = None,
    ) -> list[int] | torch.Tensor:
        """Text -> ids (with the tokenizer's special tokens unless add_special_tokens=False)."""
        if not isinstance(text, str):
            raise LLMOSError(
                f"encode takes one string, got {type(text).__name__}; call the tokenizer for batches"
            )
        ids = self(
            text, text_pair, truncation=truncation, max_length=max_length, add_special_tokens=add_special_tokens,
            return_attention_mask=False, return_token_type_ids=False,
        )["input_ids"]  # fmt: skip
        if return_tensors is None:
            return ids
        if return_tensors != "pt":
            raise LLMOSError(
                f"return_tensors={return_tensors!r} is not supported; use 'pt' or None"
            )
        return to_tensor("input_ids", ids)

    # ---- decoding ----------------------------------------------------------------------------

    def decode(
        self,
        ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> str:
        """Ids (list, 1-D tensor or numpy array) -> text."""
        text = self._backend.decode(_as_id_list(ids), skip_special_tokens=skip_special_tokens)
        clean = self._settings.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces is not None:
            clean = clean_up_tokenization_spaces
        # Like transformers, never clean BPE output: its spaces before punctuation are real.
        if clean and type(self._backend.model).__name__ != "BPE":
            text = _clean_up_tokenization(text)
        return text

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> list[str]:
        """A list of id sequences or a 2-D tensor -> one string per row."""
        rows = sequences.tolist() if hasattr(sequences, "tolist") else list(sequences)
        return [self.decode(row, skip_special_tokens, clean_up_tokenization_spaces) for row in rows]

    # ---- chat --------------------------------------------------------------------------------

    def apply_chat_template(
        self,
        messages: Sequence[dict] | Sequence[Sequence[dict]],
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        return_tensors: str | None = None,
        return_dict: bool = False,
        tools: list[dict] | None = None,
        chat_template: str | None = None,
        documents: list[dict] | None = None,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> str | list[str] | list[int] | list[list[int]] | torch.Tensor | BatchEncoding:
        """Render messages with the chat template (as transformers does) and optionally tokenize them."""
        template = select_template(self.chat_template, chat_template, tools)
        if isinstance(messages, (list, tuple)) and not messages:
            raise LLMOSError(
                "cannot apply a chat template to an empty conversation; give at least one message"
            )
        batched = isinstance(messages[0], (list, tuple))
        conversations = list(messages) if batched else [messages]
        variables = {**self.special_tokens_map, **kwargs}
        rendered = [
            render_chat(template, chat, add_generation_prompt=add_generation_prompt, tools=tools,
                        documents=documents, **variables)
            for chat in conversations
        ]  # fmt: skip
        if not tokenize:
            return rendered if batched else rendered[0]
        out = self(
            rendered if batched else rendered[0], padding=padding, truncation=truncation,
            max_length=max_length, add_special_tokens=False, return_tensors=return_tensors,
        )  # fmt: skip
        return out if return_dict else out["input_ids"]

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, len={len(self)}, model={type(self._backend.model).__name__}, "
            f"special_tokens={self.special_tokens_map}, padding_side={self.padding_side!r})"
        )

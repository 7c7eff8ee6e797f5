"""Layer 3 (formats): the attributes a tokenizer carries besides its pipeline.

Named special tokens and their ids (settable, checked against the vocabulary),
padding/truncation sides, model_max_length, the chat template and the model
input names: the part of transformers' tokenizer API that lives in
tokenizer_config.json. `Tokenizer` inherits it; it reads `self._backend` (a
`tokenizers.Tokenizer`) and `self._settings` (a `TokenizerSettings`).
"""

from __future__ import annotations

from tokenizers import Tokenizer as BackendTokenizer

from llmos.errors import LLMOSError
from llmos.tokenizer.files import SPECIAL_TOKEN_NAMES, TokenizerSettings

SIDES = ("left", "right")

# transformers tokenizer classes whose model_input_names include token_type_ids (sentence pairs).
SEGMENT_TOKENIZER_CLASSES = (
    "Bert", "Electra", "Albert", "Deberta", "Funnel", "XLNet", "ConvBert", "SqueezeBert",
    "MobileBert", "Splinter", "RoFormer", "Nezha", "MegatronBert", "Ernie", "LayoutLM",
)  # fmt: skip


def _token_property(name: str) -> property:
    def get(self: TokenizerAttributes) -> str | None:
        return self._special(name)

    def set_(self: TokenizerAttributes, token: str | None) -> None:
        self._set_special(name, token)

    return property(get, set_, doc=f"The {name.replace('_', ' ')} as a string (None when absent).")


def _token_id_property(name: str) -> property:
    def get(self: TokenizerAttributes) -> int | None:
        return self._special_id(name)

    return property(get, doc=f"Id of the {name.replace('_', ' ')} (None when absent).")


class TokenizerAttributes:
    """Special tokens, sides and limits of a tokenizer, as transformers names them."""

    _backend: BackendTokenizer
    _settings: TokenizerSettings

    # ---- sizes and special tokens ------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens (as in transformers)."""
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    def _special(self, name: str) -> str | None:
        return self._settings.special_tokens.get(name)

    def _special_id(self, name: str) -> int | None:
        token = self._special(name)
        return None if token is None else self._backend.token_to_id(token)

    def _set_special(self, name: str, token: str | None) -> None:
        if token is None:
            self._settings.special_tokens.pop(name, None)
            return
        if self._backend.token_to_id(token) is None:
            raise LLMOSError(
                f"{name} {token!r} is not in the vocabulary; use an existing token "
                f"(e.g. the eos token {self.eos_token!r})"
            )
        self._settings.special_tokens[name] = token

    bos_token = _token_property("bos_token")
    eos_token = _token_property("eos_token")
    pad_token = _token_property("pad_token")
    unk_token = _token_property("unk_token")
    sep_token = _token_property("sep_token")
    cls_token = _token_property("cls_token")
    mask_token = _token_property("mask_token")
    bos_token_id = _token_id_property("bos_token")
    eos_token_id = _token_id_property("eos_token")
    unk_token_id = _token_id_property("unk_token")
    sep_token_id = _token_id_property("sep_token")
    cls_token_id = _token_id_property("cls_token")
    mask_token_id = _token_id_property("mask_token")

    @property
    def pad_token_id(self) -> int | None:
        return self._special_id("pad_token")

    @pad_token_id.setter
    def pad_token_id(self, value: int | None) -> None:
        token = None if value is None else self._backend.id_to_token(int(value))
        if value is not None and token is None:
            raise LLMOSError(f"pad_token_id {value} is outside the vocabulary (0..{len(self) - 1})")
        self.pad_token = token

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """Named special tokens in transformers' order, e.g. {"bos_token": "<s>", ...}."""
        return {
            n: self._settings.special_tokens[n]
            for n in SPECIAL_TOKEN_NAMES
            if n in self._settings.special_tokens
        }

    @property
    def all_special_tokens(self) -> list[str]:
        seen: list[str] = []
        for token in [*self.special_tokens_map.values(), *self._settings.extra_special_tokens]:
            if token not in seen:
                seen.append(token)
        return seen

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @staticmethod
    def _check_side(name: str, side: str) -> None:
        if side not in SIDES:
            raise LLMOSError(f"{name} must be 'left' or 'right', got {side!r}")

    @property
    def padding_side(self) -> str:
        return self._settings.padding_side

    @padding_side.setter
    def padding_side(self, side: str) -> None:
        self._check_side("padding_side", side)
        self._settings.padding_side = side

    @property
    def truncation_side(self) -> str:
        return self._settings.truncation_side

    @truncation_side.setter
    def truncation_side(self, side: str) -> None:
        self._check_side("truncation_side", side)
        self._settings.truncation_side = side

    @property
    def model_max_length(self) -> int:
        return self._settings.model_max_length

    @model_max_length.setter
    def model_max_length(self, value: int) -> None:
        self._settings.model_max_length = int(value)

    @property
    def chat_template(self) -> str | dict[str, str] | None:
        return self._settings.chat_template

    @chat_template.setter
    def chat_template(self, template: str | dict[str, str] | None) -> None:
        self._settings.chat_template = template

    @property
    def model_input_names(self) -> list[str]:
        """Fields a call returns: from the config, else by tokenizer class as transformers defines them."""
        if self._settings.model_input_names is not None:
            return list(self._settings.model_input_names)
        tokenizer_class = str(self._settings.passthrough.get("tokenizer_class") or "")
        if tokenizer_class.startswith(SEGMENT_TOKENIZER_CLASSES):
            return ["input_ids", "token_type_ids", "attention_mask"]
        return ["input_ids", "attention_mask"]

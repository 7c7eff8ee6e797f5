"""Layer 3 (formats): read and write the Hugging Face tokenizer directory layout.

A tokenizer directory holds `tokenizer.json` (the `tokenizers` pipeline) and
`tokenizer_config.json` (special tokens, padding side, chat template, ...),
optionally `special_tokens_map.json` and `chat_template.jinja`. This module
turns those files into a `TokenizerSettings` and back, so the `Tokenizer`
class never parses JSON itself. Keys we do not use are kept verbatim and
written back, so a round trip loses nothing transformers cares about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import AddedToken
from tokenizers import Tokenizer as BackendTokenizer

from llmos.errors import LLMOSError

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"

# transformers' sentinel for "no limit" (int(1e30)); anything above LARGE_INTEGER means unbounded.
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)

SPECIAL_TOKEN_NAMES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)

# Keys that TokenizerSettings owns; everything else in tokenizer_config.json is passed through.
_OWNED_KEYS = set(SPECIAL_TOKEN_NAMES) | {
    "additional_special_tokens",
    "extra_special_tokens",
    "added_tokens_decoder",
    "padding_side",
    "truncation_side",
    "model_max_length",
    "chat_template",
    "model_input_names",
    "clean_up_tokenization_spaces",
    "add_bos_token",
    "add_eos_token",
}


class TokenizerFilesError(LLMOSError):
    """A tokenizer directory is missing, incomplete or malformed."""


@dataclass
class TokenizerSettings:
    """Everything about a tokenizer that is not in tokenizer.json."""

    special_tokens: dict[str, str] = field(default_factory=dict)  # "bos_token" -> "<s>"
    extra_special_tokens: list[str] = field(default_factory=list)
    padding_side: str = "right"
    truncation_side: str = "right"
    model_max_length: int = VERY_LARGE_INTEGER
    chat_template: str | dict[str, str] | None = None
    model_input_names: list[str] | None = None
    clean_up_tokenization_spaces: bool = False
    add_bos_token: bool | None = None
    add_eos_token: bool | None = None
    added_tokens: list[AddedToken] = field(default_factory=list)
    passthrough: dict[str, Any] = field(default_factory=dict)


def token_content(value: Any) -> str | None:
    """A special token given as "<s>" or {"content": "<s>", ...} -> "<s>"."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    if isinstance(value, AddedToken):
        return value.content
    raise TokenizerFilesError(
        f"special token {value!r} is neither a string nor a {{'content': ...}} dict"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TokenizerFilesError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TokenizerFilesError(f"{path} should hold a JSON object, got {type(data).__name__}")
    return data


def _parse_chat_template(value: Any, path: Path) -> str | dict[str, str] | None:
    """A template string, or the list-of-named-templates form [{"name", "template"}]."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {}
        for item in value:
            if not (isinstance(item, dict) and "name" in item and "template" in item):
                raise TokenizerFilesError(
                    f"chat_template in {path} is a list but {item!r} is not a "
                    "{'name': ..., 'template': ...} entry"
                )
            named[item["name"]] = item["template"]
        return named
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    raise TokenizerFilesError(
        f"chat_template in {path} should be a string or a list, got {value!r}"
    )


def _added_token(entry: dict[str, Any]) -> AddedToken:
    return AddedToken(
        entry["content"],
        single_word=entry.get("single_word", False),
        lstrip=entry.get("lstrip", False),
        rstrip=entry.get("rstrip", False),
        normalized=entry.get("normalized", not entry.get("special", False)),
        special=entry.get("special", False),
    )


def read_tokenizer_dir(directory: str | Path) -> tuple[BackendTokenizer, TokenizerSettings]:
    """Load tokenizer.json and parse the config files next to it."""
    path = Path(directory)
    expected = f"{TOKENIZER_FILE} (and optionally {CONFIG_FILE}, {SPECIAL_TOKENS_MAP_FILE})"
    if not path.is_dir():
        raise TokenizerFilesError(
            f"tokenizer path {str(path)!r} is not a directory holding {expected}"
        )
    if not (path / TOKENIZER_FILE).is_file():
        raise TokenizerFilesError(
            f"tokenizer directory {str(path)!r} has no {TOKENIZER_FILE}; expected {expected}"
        )
    try:
        backend = BackendTokenizer.from_file(str(path / TOKENIZER_FILE))
    except Exception as exc:  # the Rust side raises plain Exception on bad JSON
        raise TokenizerFilesError(
            f"{path / TOKENIZER_FILE} cannot be read by tokenizers: {exc}"
        ) from None

    config = _read_json(path / CONFIG_FILE) if (path / CONFIG_FILE).is_file() else {}
    special_map = (
        _read_json(path / SPECIAL_TOKENS_MAP_FILE)
        if (path / SPECIAL_TOKENS_MAP_FILE).is_file()
        else {}
    )
    settings = TokenizerSettings()
    for name in SPECIAL_TOKEN_NAMES:
        # tokenizer_config.json wins over special_tokens_map.json, as in transformers.
        value = config[name] if name in config else special_map.get(name)
        content = token_content(value)
        if content is not None:
            settings.special_tokens[name] = content
    extras = config.get("extra_special_tokens") or config.get("additional_special_tokens")
    if extras is None:
        extras = special_map.get("extra_special_tokens") or special_map.get(
            "additional_special_tokens"
        )
    if isinstance(extras, list):
        settings.extra_special_tokens = [token_content(v) for v in extras]

    settings.padding_side = config.get("padding_side", "right")
    settings.truncation_side = config.get("truncation_side", "right")
    max_len = config.get("model_max_length")
    settings.model_max_length = int(max_len) if max_len is not None else VERY_LARGE_INTEGER
    template = config.get("chat_template")
    if (path / CHAT_TEMPLATE_FILE).is_file():
        template = (path / CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")
    settings.chat_template = _parse_chat_template(template, path / CONFIG_FILE)
    settings.model_input_names = config.get("model_input_names")
    settings.clean_up_tokenization_spaces = bool(config.get("clean_up_tokenization_spaces", False))
    settings.add_bos_token = config.get("add_bos_token")
    settings.add_eos_token = config.get("add_eos_token")
    decoder = config.get("added_tokens_decoder") or {}
    settings.added_tokens = [
        _added_token(entry) for _, entry in sorted(decoder.items(), key=lambda kv: int(kv[0]))
    ]
    settings.passthrough = {k: v for k, v in config.items() if k not in _OWNED_KEYS}
    return backend, settings


def _added_token_json(token: AddedToken) -> dict[str, Any]:
    return {
        "content": token.content,
        "lstrip": token.lstrip,
        "normalized": token.normalized,
        "rstrip": token.rstrip,
        "single_word": token.single_word,
        "special": token.special,
    }


def write_tokenizer_dir(
    directory: str | Path, backend: BackendTokenizer, settings: TokenizerSettings
) -> list[Path]:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json; return their paths."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    backend.save(str(path / TOKENIZER_FILE))

    config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast"}
    config.update(settings.passthrough)
    config["added_tokens_decoder"] = {
        str(index): _added_token_json(token)
        for index, token in sorted(backend.get_added_tokens_decoder().items())
    }
    config.update(settings.special_tokens)
    if settings.extra_special_tokens:
        config["extra_special_tokens"] = list(settings.extra_special_tokens)
    config["padding_side"] = settings.padding_side
    config["truncation_side"] = settings.truncation_side
    config["model_max_length"] = settings.model_max_length
    config["clean_up_tokenization_spaces"] = settings.clean_up_tokenization_spaces
    if settings.model_input_names is not None:
        config["model_input_names"] = list(settings.model_input_names)
    for flag in ("add_bos_token", "add_eos_token"):
        if getattr(settings, flag) is not None:
            config[flag] = getattr(settings, flag)
    template = settings.chat_template
    if isinstance(template, dict):
        config["chat_template"] = [{"name": k, "template": v} for k, v in template.items()]
    elif template is not None:
        config["chat_template"] = template
    (path / CONFIG_FILE).write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )

    special_map: dict[str, Any] = dict(settings.special_tokens)
    if settings.extra_special_tokens:
        special_map["additional_special_tokens"] = list(settings.extra_special_tokens)
    (path / SPECIAL_TOKENS_MAP_FILE).write_text(
        json.dumps(special_map, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    # An existing chat_template.jinja would override the config's template when read back.
    jinja_file = path / CHAT_TEMPLATE_FILE
    if jinja_file.is_file():
        if isinstance(template, str):
            jinja_file.write_text(template, encoding="utf-8")
        else:
            jinja_file.unlink()
    return [path / TOKENIZER_FILE, path / CONFIG_FILE, path / SPECIAL_TOKENS_MAP_FILE]

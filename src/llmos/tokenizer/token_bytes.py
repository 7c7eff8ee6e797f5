"""Layer 3: the bytes behind one token, and its text as OpenAI's logprobs name it.

A byte-level BPE spells bytes with printable stand-ins ("Ġ" for a space, "æĪ"
for the first two bytes of "我"); a SentencePiece vocabulary has byte tokens
"<0xE4>" and "▁" for spaces. `TokenBytes` undoes the spelling the tokenizer's
decoder would undo, so a token that holds only part of a UTF-8 character still
has exact bytes. `token_text` names such a token "bytes:\\xe6\\x88" (the
escaped bytes), as OpenAI's completions logprobs do; whole text stays text.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character map: printable Latin-1 bytes stand for themselves,
    the rest (controls, space, ...) are shifted to 256 + n in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    shifted = [b for b in range(256) if b not in printable]
    spelling = {b: chr(b) for b in printable}
    spelling.update({b: chr(256 + n) for n, b in enumerate(shifted)})
    return spelling


@lru_cache(maxsize=1)
def _byte_of_symbol() -> dict[str, int]:
    return {symbol: byte for byte, symbol in byte_alphabet().items()}


def _decoder_steps(backend: Any) -> list[dict[str, Any]]:
    """The decoder pipeline of a `tokenizers.Tokenizer`, flattened: [{"type": "ByteLevel", ...}, ...]."""
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    if decoder.get("type") == "Sequence":
        return list(decoder.get("decoders", []))
    return [decoder] if decoder else []


class TokenBytes:
    """`token_bytes(id) -> bytes` for a `tokenizers.Tokenizer` (read its decoder once)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        steps = _decoder_steps(backend)
        kinds = {step.get("type") for step in steps}
        self.byte_level = "ByteLevel" in kinds
        self.byte_fallback = "ByteFallback" in kinds
        self.spaces = {step.get("replacement", "▁") for step in steps if step.get("type") == "Metaspace"}
        self.spaces |= {step["pattern"].get("String") for step in steps if step.get("type") == "Replace"
                        and step.get("content") == " " and isinstance(step.get("pattern"), dict)}
        self.spaces.discard(None)
        self.added = {i for i, token in backend.get_added_tokens_decoder().items()}

    def __call__(self, token_id: int) -> bytes:
        piece = self.backend.id_to_token(token_id)
        if piece is None:
            return b""
        if token_id in self.added:
            return piece.encode("utf-8")
        if self.byte_fallback and (match := _BYTE_TOKEN.fullmatch(piece)):
            return bytes([int(match[1], 16)])
        if self.byte_level:
            table = _byte_of_symbol()
            if all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece)
        if self.spaces:
            for space in self.spaces:
                piece = piece.replace(space, " ")
            return piece.encode("utf-8")
        return self.backend.decode([token_id], skip_special_tokens=False).encode("utf-8")


def token_text(raw: bytes) -> str:
    """A token's bytes as logprobs name it: its text, or "bytes:\\xNN..." when they are not whole UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + raw.decode("utf-8", "backslashreplace")

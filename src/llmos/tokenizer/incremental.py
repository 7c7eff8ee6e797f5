"""Layer 3: decoding token ids one at a time, never half a UTF-8 character, without re-decoding.

`IncrementalDecoder.push(id)` returns the text that token completes ("" while a
character is still missing bytes); the pieces joined, plus `flush()` at the end,
equal decoding all the ids at once. Each step decodes only a short window: the
tokens of the last released piece (context, so that decoders which strip a
leading space or merge bytes see what came before) plus the tokens since.

With a `tokenizers` backend this is `tokenizers.decoders.DecodeStream`; for a
tokenizer without one (or one whose `decode` post-processes, such as
transformers' space clean-up) the same windowing runs on `tokenizer.decode`.
The generation streamers and the server's text streams both use it.
"""

from __future__ import annotations

from typing import Any

from tokenizers.decoders import DecodeStream

REPLACEMENT = "\ufffd"  # what decoding shows for an incomplete UTF-8 character


def stream_backend(tokenizer: Any) -> Any | None:
    """The `tokenizers.Tokenizer` whose decoding equals `tokenizer.decode`'s, or None."""
    if hasattr(tokenizer, "id_to_token") and hasattr(tokenizer, "decoder"):
        return tokenizer  # a bare tokenizers.Tokenizer
    if getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return None  # decode() rewrites the text afterwards: stream through it
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend if hasattr(backend, "id_to_token") else None


def decode_with(tokenizer: Any, ids: list[int], skip_special_tokens: bool) -> str:
    """`tokenizer.decode(ids)` for tokenizers with or without the skip_special_tokens argument."""
    try:
        return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
    except TypeError:
        return tokenizer.decode(ids)


class IncrementalDecoder:
    """Token ids in, text out as soon as it is whole; `flush()` ends the stream (and starts afresh)."""

    def __init__(self, tokenizer: Any, skip_special_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.backend = stream_backend(tokenizer)
        self._reset()

    def _reset(self) -> None:
        self._stream = DecodeStream(skip_special_tokens=self.skip_special_tokens) if self.backend else None
        self._context: list[int] = []  # the ids of the last released piece
        self._context_text = ""
        self._pending: list[int] = []  # ids since, whose text is not released yet

    def _decode(self, ids: list[int]) -> str:
        if self.backend is not None:
            return self.backend.decode(ids, skip_special_tokens=self.skip_special_tokens)
        return decode_with(self.tokenizer, ids, self.skip_special_tokens)

    def push(self, token_ids: int | list[int]) -> str:
        """Add one token (or several, e.g. a prompt); return the text that is now complete, maybe ""."""
        if isinstance(token_ids, int):
            return self._push_one(token_ids)
        return "".join(self._push_one(token_id) for token_id in token_ids)

    def _push_one(self, token_id: int) -> str:
        self._pending.append(token_id)
        if self._stream is not None:
            try:
                piece = self._stream.step(self.backend, token_id)
            except Exception:  # noqa: BLE001 - DecodeStream refuses a window whose text changed: go on by hand
                self._stream = None
                self._context_text = self._decode(self._context)
            else:
                if piece is None:
                    return ""
                self._context, self._pending = self._pending, []
                return piece
        return self._step_by_hand()

    def _step_by_hand(self) -> str:
        """DecodeStream's rule on `decode`: release once the window's text grew and ends whole."""
        text = self._decode(self._context + self._pending)
        if len(text) <= len(self._context_text) or text.endswith(REPLACEMENT):
            return ""
        if text.startswith(self._context_text):
            piece = text[len(self._context_text):]
        else:  # the new tokens changed how the released ones decode (byte-fallback groups): no retraction
            piece = self._decode(self._pending)
        self._context, self._pending = self._pending, []
        self._context_text = self._decode(self._context)
        return piece

    def flush(self) -> str:
        """The text still held back, as decoding all ids would show it (an unfinished character
        decodes to U+FFFD); then the decoder starts a new stream."""
        tail = ""
        if self._pending:
            before = self._decode(self._context)
            text = self._decode(self._context + self._pending)
            tail = text[len(before):] if text.startswith(before) else self._decode(self._pending)
        self._reset()
        return tail

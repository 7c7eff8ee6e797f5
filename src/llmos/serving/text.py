"""Layer 7: text in and out of the engine: one tokenizer face, chat rendering, streamed text.

`ServedTokenizer` gives the HTTP layer one interface over the LLMOS `Tokenizer`
that `as_tokenizer` makes of whatever tokenizer the server was given. `TextStream`
turns a request's token ids into text deltas: the tokenizer layer's
`IncrementalDecoder` never releases half a UTF-8 character (and decodes a short
window per token, not the whole answer); on top, it holds back text that could
still become a stop string, and cuts the text at the first stop string it sees
(which is not part of the answer, as in OpenAI's API).
"""

from __future__ import annotations

from typing import Any

from llmos.generation.tool_calls import renders_tools
from llmos.tokenizer.chat_template import CHATML_TEMPLATE, render_chat
from llmos.tokenizer.from_any import as_tokenizer
from llmos.tokenizer.incremental import IncrementalDecoder
from llmos.tokenizer.token_bytes import TokenBytes, token_text

# Tokens that end an assistant turn in common chat formats (ChatML, Llama 3, Phi, Gemma).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


class ServedTokenizer:
    """The HTTP layer's tokenizer: the LLMOS `Tokenizer` (any tokenizer given is converted once by
    `as_tokenizer`) plus the chat template and the token ids that end an answer."""

    def __init__(self, tokenizer: Any, chat_template: str | None = None,
                 eos_token_ids: list[int] | None = None) -> None:
        self.tokenizer = as_tokenizer(tokenizer)
        self.backend = self.tokenizer.backend_tokenizer
        own = self.tokenizer.chat_template
        # The tokenizer's own templates (str or named dict) go through its apply_chat_template.
        self.use_own_template = chat_template is None and own is not None
        self.chat_template = chat_template or (own if isinstance(own, str) else None) or CHATML_TEMPLATE
        stops = set(eos_token_ids or [])
        if self.tokenizer.eos_token_id is not None:
            stops.add(self.tokenizer.eos_token_id)
        for token in END_OF_TURN_TOKENS:
            token_id = self.token_to_id(token)
            if token_id is not None:
                stops.add(token_id)
        self.stop_token_ids = frozenset(stops)
        self._token_bytes: TokenBytes | None = None

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def encode(self, text: str) -> list[int]:
        return list(self.backend.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=True)

    def incremental_decoder(self) -> IncrementalDecoder:
        """A fresh decoder that streams what `decode` gives, one token at a time."""
        return IncrementalDecoder(self.backend)

    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes one token stands for (part of a character, for some tokens)."""
        if self._token_bytes is None:
            self._token_bytes = TokenBytes(self.backend)
        return self._token_bytes(token_id)

    def token_text(self, token_id: int) -> str:
        """One token's text for logprob listings (special tokens included); a token that is only
        part of a UTF-8 character is named by its bytes, "bytes:\\xe4\\xbd", as OpenAI does."""
        return token_text(self.token_bytes(token_id))

    @property
    def renders_tools(self) -> bool:
        """Whether the chat template lays out tool definitions and calls itself (it reads `tools`)."""
        return renders_tools(self.tokenizer.chat_template if self.use_own_template else self.chat_template)

    def render_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        """The prompt for the assistant's next turn, through the checkpoint's chat template."""
        if self.use_own_template:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                      tools=tools)
        return render_chat(self.chat_template, messages, add_generation_prompt=True, tools=tools)


class TextStream:
    """Token ids in, text deltas out, stop strings honoured."""

    def __init__(self, tokenizer: ServedTokenizer, stop: list[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.decoder = tokenizer.incremental_decoder()
        self.full = ""  # the whole characters decoded so far
        self.emitted = 0  # characters of `full` already handed out
        self.stopped = False

    @property
    def text(self) -> str:
        """The answer so far: what was handed out (cut before a stop string once one is seen)."""
        return self.full[: self.emitted]

    def push(self, token_id: int) -> str:
        """Add a token; return the text that is now safe to show (maybe empty)."""
        piece = self.decoder.push(token_id)
        if not piece:  # an incomplete multi-byte character (or a skipped token): nothing new
            return ""
        self.full += piece
        full = self.full
        if self.stop:
            window = max(0, self.emitted - max(len(s) for s in self.stop))
            hits = [i for i in (full.find(s, window) for s in self.stop) if i >= 0]
            if hits:
                self.stopped = True
                return self._emit_until(min(hits))
            return self._emit_until(len(full) - self._held_back(full))
        return self._emit_until(len(full))

    def flush(self) -> str:
        """At the end: whatever was held back (no stop string completed)."""
        if self.stopped:
            return ""
        self.full += self.decoder.flush()
        return self._emit_until(len(self.full))

    def _held_back(self, full: str) -> int:
        """Length of the longest tail of `full` that begins some stop string."""
        longest = 0
        for stop in self.stop:
            for n in range(min(len(stop) - 1, len(full)), longest, -1):
                if full.endswith(stop[:n]):
                    longest = n
                    break
        return longest

    def _emit_until(self, end: int) -> str:
        if end <= self.emitted:
            if self.stopped:
                self.emitted = max(end, 0)
            return ""
        delta = self.full[self.emitted : end]
        self.emitted = end
        return delta

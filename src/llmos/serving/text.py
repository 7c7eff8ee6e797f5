"""Layer 7: text in and out of the engine: one tokenizer face, chat rendering, streamed text.

`ServedTokenizer` gives the HTTP layer one interface over the LLMOS `Tokenizer`
that `as_tokenizer` makes of whatever tokenizer the server was given, with the
ids that end an answer (`generation.replies.stop_token_ids`, the one definition).
A request's token ids become text deltas through `generation.replies.TextStream`
(never half a UTF-8 character; stop strings held back, then cut, as in OpenAI's
API).
"""

from __future__ import annotations

from typing import Any

from llmos.generation.replies import TextStream, stop_token_ids
from llmos.generation.tool_calls import renders_tools
from llmos.tokenizer.chat_template import CHATML_TEMPLATE, render_chat
from llmos.tokenizer.from_any import as_tokenizer
from llmos.tokenizer.incremental import IncrementalDecoder
from llmos.tokenizer.token_bytes import TokenBytes, token_text

__all__ = ["ServedTokenizer", "TextStream"]


class ServedTokenizer:
    """The HTTP layer's tokenizer: the LLMOS `Tokenizer` (any tokenizer given is converted once by
    `as_tokenizer`) plus the chat template and the token ids that end an answer: `stop_ids` in
    order (the model's own end-of-sequence first; `eos_token_ids` are the model's, see
    `generation.replies.model_eos_ids`), `stop_token_ids` as a set."""

    def __init__(self, tokenizer: Any, chat_template: str | None = None,
                 eos_token_ids: list[int] | None = None) -> None:
        self.tokenizer = as_tokenizer(tokenizer)
        self.backend = self.tokenizer.backend_tokenizer
        own = self.tokenizer.chat_template
        # The tokenizer's own templates (str or named dict) go through its apply_chat_template.
        self.use_own_template = chat_template is None and own is not None
        self.chat_template = chat_template or (own if isinstance(own, str) else None) or CHATML_TEMPLATE
        self.stop_ids = stop_token_ids(self.tokenizer, eos_token_ids or [])
        self.stop_token_ids = frozenset(self.stop_ids)
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

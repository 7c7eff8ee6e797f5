"""Layer 7: token logprobs in OpenAI's two shapes.

Completions (`logprobs: N`) list `tokens`, `token_logprobs`, `top_logprobs`
(keyed by token text) and `text_offset`, the character offset where each token
begins in the returned text: a token that only starts a character sits at that
character, the one that finishes it too (as OpenAI's API shows). Chat
(`logprobs: true`) lists `{token, logprob, bytes, top_logprobs}` per token,
`bytes` being the token's UTF-8 bytes. A token is named by its text, or by
"bytes:\\xe4\\xbd" when it holds only part of a character.
"""

from __future__ import annotations

from typing import Any

from llmos.serving.dispatch import TokenInfo
from llmos.serving.text import ServedTokenizer


class TextOffsets:
    """Character offsets of consecutive tokens in the text they decode to, from `start` on."""

    def __init__(self, tokenizer: ServedTokenizer, start: int = 0) -> None:
        self.decoder = tokenizer.incremental_decoder()
        self.offset = start

    def next(self, token_id: int) -> int:
        """Where `token_id` begins; then move past the whole characters it completes."""
        at = self.offset
        self.offset += len(self.decoder.push(token_id))
        return at


def completion_logprobs(tokenizer: ServedTokenizer, tokens: list[TokenInfo], offsets: TextOffsets) -> dict[str, Any]:
    out: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for token_id, logprob, tops in tokens:
        out["tokens"].append(tokenizer.token_text(token_id))
        out["token_logprobs"].append(logprob)
        out["top_logprobs"].append({tokenizer.token_text(t): lp for t, lp in tops} if logprob is not None
                                   else None)
        out["text_offset"].append(offsets.next(token_id))
    return out


def chat_logprobs(tokenizer: ServedTokenizer, tokens: list[TokenInfo]) -> dict[str, Any]:
    def entry(token_id: int, logprob: float) -> dict[str, Any]:
        raw = tokenizer.token_bytes(token_id)
        return {"token": tokenizer.token_text(token_id), "logprob": logprob, "bytes": list(raw)}

    return {"content": [{**entry(t, lp), "top_logprobs": [entry(i, v) for i, v in tops]}
                        for t, lp, tops in tokens], "refusal": None}

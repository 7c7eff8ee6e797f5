"""Layer 5: streaming text out while tokens are generated.

`generate` calls `put(ids)` first with the prompt, then with each new token,
and `end()` once. The tokenizer layer's `IncrementalDecoder` turns ids into
text a short window at a time and releases it only up to the last complete
character (half of a multi-byte UTF-8 character waits for its other bytes).
`end()` prints what is left as decoding all the tokens shows it, so a stream
cut mid-character ends in U+FFFD, as transformers' streamer does and as the
decoded result reads. `TextStreamer` prints; `TextIteratorStreamer` hands
text to another thread through a queue (`for text in streamer: ...`).
"""

from __future__ import annotations

from queue import Queue
from typing import Any

import torch

from llmos.tokenizer.incremental import IncrementalDecoder


class BaseStreamer:
    def put(self, value: torch.Tensor) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError


class TextStreamer(BaseStreamer):
    """Print text as soon as it is complete; `skip_prompt=True` leaves the prompt out."""

    def __init__(self, tokenizer: Any, skip_prompt: bool = False) -> None:
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self._decoder = IncrementalDecoder(tokenizer, skip_special_tokens=True)
        self._next_is_prompt = True

    def put(self, value: torch.Tensor) -> None:
        if value.dim() > 1:
            if value.shape[0] > 1:
                raise ValueError("TextStreamer streams one sequence; got a batch of "
                                 f"{value.shape[0]}")
            value = value[0]
        if self.skip_prompt and self._next_is_prompt:
            self._next_is_prompt = False
            return
        self._next_is_prompt = False
        chunk = self._decoder.push(value.tolist())
        if chunk:
            self.on_text(chunk, stream_end=False)

    def end(self) -> None:
        chunk = self._decoder.flush()
        self._next_is_prompt = True
        self.on_text(chunk, stream_end=True)

    def on_text(self, text: str, stream_end: bool = False) -> None:
        print(text, flush=True, end="" if not stream_end else "\n")


class TextIteratorStreamer(TextStreamer):
    """Iterate over text chunks in another thread; `timeout` (s) bounds each wait."""

    def __init__(self, tokenizer: Any, skip_prompt: bool = False, timeout: float | None = None) -> None:
        super().__init__(tokenizer, skip_prompt)
        self.queue: Queue = Queue()
        self.stop_signal = None
        self.timeout = timeout

    def on_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.queue.put(text, timeout=self.timeout)
        if stream_end:
            self.queue.put(self.stop_signal, timeout=self.timeout)

    def __iter__(self) -> TextIteratorStreamer:
        return self

    def __next__(self) -> str:
        value = self.queue.get(timeout=self.timeout)
        if value is self.stop_signal:
            raise StopIteration
        return value

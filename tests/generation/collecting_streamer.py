"""A TextStreamer that keeps its chunks instead of printing them, for streaming tests."""

from llmos.generation import TextStreamer


class Collect(TextStreamer):
    def __init__(self, tokenizer, **kw):
        super().__init__(tokenizer, **kw)
        self.chunks = []

    def on_text(self, text, stream_end=False):
        self.chunks.append(text)

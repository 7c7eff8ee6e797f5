"""Layer 0: the one exception family LLMOS raises for bad input.

Every message names the offending value and what would be valid; the CLI
prints it as one line and exits with code 2. `param`, when set, names the
field at fault, so a server's 400 or a form can point at it without reading
the message (messages are for people; code decides by type and `param`).
"""

from __future__ import annotations


class LLMOSError(ValueError):
    """Bad input: a value, file or request that LLMOS cannot use as given.

    `param`: the field at fault ("prompt", "input.question", "options.max_words"), or None."""

    def __init__(self, message: str = "", param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

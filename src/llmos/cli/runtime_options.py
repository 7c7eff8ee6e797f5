"""Layer 9: the options `serve`, `chat` and `generate` share: `--threads` and `--chat-template`.

Both are checked before the model loads, so a typo costs no waiting: a thread
count below 1 is refused by the option's range, a template file that is
missing, too large (`chat_template.MAX_TEMPLATE_CHARS`), not UTF-8 or not
valid Jinja by `read_chat_template`.
The names are the ones llama-server and vLLM users know: `-t`/`--threads`,
`--chat-template FILE` (vLLM's) or `--chat-template-file FILE` (llama-server's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from llmos.errors import LLMOSError


def threads_option() -> Any:
    return typer.Option(None, "--threads", "-t", min=1, help="CPU threads torch computes with "
                                                             "(default: torch's, one per core).")


def chat_template_option() -> Any:
    return typer.Option(None, "--chat-template", "--chat-template-file", help="A Jinja chat template file to use instead of the "
                                                      "model's own.")


def set_threads(threads: int | None) -> None:
    """Give torch `threads` threads (None: leave torch's default)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def read_chat_template(path: Path | None) -> str | None:
    """The template in file `path`, checked to compile (None: the model's own template)."""
    if path is None:
        return None
    from llmos.tokenizer.chat_template import (
        MAX_TEMPLATE_CHARS,
        ChatTemplateError,
        compile_chat_template,
    )

    if not path.is_file():
        raise LLMOSError(f"--chat-template {str(path)!r}: no such file; give a Jinja chat template file")
    if path.stat().st_size > 4 * MAX_TEMPLATE_CHARS:  # not read at all: a model file given by mistake
        raise LLMOSError(f"--chat-template {str(path)!r} is {path.stat().st_size:,} bytes; a chat template "
                         f"has at most {MAX_TEMPLATE_CHARS:,} characters")
    try:
        template = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LLMOSError(f"--chat-template {str(path)!r} is not UTF-8 text") from None
    try:
        compile_chat_template(template)
    except ChatTemplateError as exc:
        raise LLMOSError(f"--chat-template {str(path)!r}: {exc}") from None
    return template

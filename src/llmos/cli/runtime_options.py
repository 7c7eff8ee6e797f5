"""Layer 9: the options `serve`, `chat`, `generate`, `agent` and `run` share: `--threads`,
`--chat-template` and `--tools-adapter`.

Both are checked before the model loads, so a typo costs no waiting: a thread
count below 1 is refused by the option's range, a template file that is
missing, too large (`chat_template.MAX_TEMPLATE_CHARS`), not UTF-8 or not
valid Jinja by `read_chat_template`.
The names are the ones llama-server and vLLM users know: `-t`/`--threads`,
`--chat-template FILE` (vLLM's) or `--chat-template-file FILE` (llama-server's).
`--tools-adapter` is `auto` (the tool-use adapter shipped for `smollm2`: requests
that carry tools decode through it), `off`, or a PEFT adapter directory; a
directory without adapter_config.json is refused before anything loads.
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


def tools_adapter_option() -> Any:
    return typer.Option("auto", "--tools-adapter", help="auto: requests with tools decode through the tool-use "
                        "adapter shipped for the model (smollm2's), the others through the model itself; off; "
                        "or a LoRA adapter directory (PEFT format, e.g. from llmos teach-tools).")


def read_tools_adapter(value: str) -> bool | Path:
    """`load_model`'s tools_adapter for a --tools-adapter value (checked before anything loads)."""
    if value in ("auto", "off"):
        return value == "auto"
    path = Path(value)
    if not (path / "adapter_config.json").is_file():
        raise LLMOSError(f"--tools-adapter {value!r}: not auto, off, or a LoRA adapter directory (one holding "
                         "adapter_config.json, as llmos teach-tools and llmos finetune write)")
    return path

"""Layer 7: open a model for serving: model (eval, no grad) + served tokenizer.

The model is a checkpoint directory (the one `save_pretrained` / `llmos
pretrain` / `llmos quantize` writes), a GGUF file, or a model name such as
`smollm2` (see `llmos.model_names`); it is given on the command line by the
operator, never by a request. A GGUF file's tokenizer, chat template and
special tokens come from its metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.errors import LLMOSError
from llmos.serving.text import ServedTokenizer


def load_for_serving(name_or_path: str | Path, dtype: Any = None, quantize: str | None = None,
                     chat_template: str | None = None) -> tuple[Any, ServedTokenizer]:
    """(model, served tokenizer); `quantize` as in `from_pretrained` ('auto', 'none', 'int8', 'int4');
    `chat_template` (Jinja source) replaces the model's own."""
    from llmos.auto import AutoModelForCausalLM, AutoTokenizer
    from llmos.model_names import resolve_model

    resolved = resolve_model(name_or_path)
    path = resolved.path
    if not resolved.is_gguf:
        if not path.is_dir():
            raise LLMOSError(f"checkpoint directory {str(path)!r} does not exist or is not a directory")
        if not (path / "tokenizer.json").exists():
            raise LLMOSError(f"{str(path)!r} has no tokenizer.json; serving needs the checkpoint's tokenizer "
                             "(save it with model.save_pretrained(dir, tokenizer=tokenizer))")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, quantize=quantize).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, ServedTokenizer(tokenizer, chat_template, eos_token_ids=model.config.eos_token_ids)

"""Layer 7: open a checkpoint directory for serving: model (eval, no grad) + served tokenizer.

The directory is the one `save_pretrained` / `llmos pretrain` writes; it is
given on the command line by the operator, never by a request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.errors import LLMOSError
from llmos.serving.text import ServedTokenizer


def load_for_serving(directory: str | Path, dtype: Any = None) -> tuple[Any, ServedTokenizer]:
    from llmos.auto import AutoModelForCausalLM, AutoTokenizer

    path = Path(directory)
    if not path.is_dir():
        raise LLMOSError(f"checkpoint directory {str(path)!r} does not exist or is not a directory")
    if not (path / "tokenizer.json").exists():
        raise LLMOSError(f"{str(path)!r} has no tokenizer.json; serving needs the checkpoint's tokenizer "
                         "(save it with model.save_pretrained(dir, tokenizer=tokenizer))")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, ServedTokenizer(tokenizer, eos_token_ids=model.config.eos_token_ids)

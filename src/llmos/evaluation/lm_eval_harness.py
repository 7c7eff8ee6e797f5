"""Layer 6 (evaluation): LLMOS models as a model type of EleutherAI's lm-evaluation-harness.

`LLMOSLM` is an lm-eval `TemplateLM` over `llmos.auto`: every task lm-eval has
(loglikelihood, loglikelihood_rolling, generate_until) runs on any model LLMOS
loads (checkpoint directory, Hugging Face directory, GGUF file, `smollm2`). It
mirrors lm-eval's `hf` backend request by request (context/continuation
tokenization, BOS handling, left truncation, stop sequences), so the same
weights get the same scores under `--model llmos` and `--model hf`.

lm-eval 0.4.x finds model types only in its own static table (no entry points),
so importing this module registers "llmos" with lm-eval's registry, and
running it is lm-eval's own CLI with that registration done first:

    python -m llmos.evaluation.lm_eval_harness --model llmos \
        --model_args pretrained=runs/quickstart --tasks hellaswag

lm-eval (>= 0.4.10) is an optional dependency (`pip install 'llmos[eval]'`): only
this module imports it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from llmos.config import token_id_list
from llmos.errors import LLMOSError
from llmos.generation.replies import left_pad

try:
    import lm_eval
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "llmos.evaluation.lm_eval_harness needs EleutherAI's lm-evaluation-harness: "
        "pip install 'llmos[eval]' (or pip install 'lm-eval>=0.4.10')"
    ) from exc
try:  # the registry object and generation helpers arrived in lm-eval 0.4.10
    from lm_eval import utils as lm_eval_utils
    from lm_eval.api.model import TemplateLM
    from lm_eval.api.registry import model_registry
    from lm_eval.models.utils import (
        Collator,
        handle_stop_sequences,
        has_bos_prefix,
        normalize_gen_kwargs,
        postprocess_generated_text,
    )
except ImportError as exc:  # pragma: no cover - exercised only with an old lm-eval
    raise ImportError(
        f"llmos.evaluation.lm_eval_harness needs lm-eval >= 0.4.10, found "
        f"{getattr(lm_eval, '__version__', 'an older one')}: pip install -U 'lm-eval>=0.4.10'"
    ) from exc

log = logging.getLogger(__name__)

MODEL_NAME = "llmos"
_TARGET = f"{__spec__.name if __spec__ else __name__}:LLMOSLM"  # the importable name, also under -m
DEFAULT_AUTO_BATCH_SIZE = 8
_IGNORED_ARGS = ("trust_remote_code", "revision")  # lm-eval passes these to every model type


def register() -> None:
    """Make `--model llmos` / `simple_evaluate(model="llmos")` resolve to `LLMOSLM` (idempotent).

    Registered by import path rather than by class, so running this module with
    `python -m` (where it is `__main__`) and importing it register the same thing."""
    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=_TARGET)


class LLMOSLM(TemplateLM):
    """An LLMOS causal LM for lm-eval: `LLMOSLM(pretrained=DIR|GGUF|NAME|model, tokenizer=None, ...)`.

    Model args (`--model_args key=value,...`): `pretrained`, `dtype` ('auto', 'float32',
    'bfloat16', 'float16'), `batch_size` (int, or 'auto' = `max_batch_size` or 8: LLMOS
    does not probe memory), `max_length` (context, default the model's `max_seq_len`),
    `device`, `quantize` ('int8', 'int4', 'none', 'auto'), `adapter` (a LoRA adapter
    directory in PEFT's format; `pretrained` may also be one), `add_bos_token`,
    `prefix_token_id`, `max_gen_toks` (default 256), `logits_cache`."""

    def __init__(
        self,
        pretrained: Any = None,
        tokenizer: Any = None,
        dtype: str | torch.dtype | None = "auto",
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
        max_length: int | None = None,
        device: str | None = None,
        quantize: str | None = None,
        adapter: str | None = None,
        add_bos_token: bool | None = None,
        prefix_token_id: int | None = None,
        max_gen_toks: int = 256,
        logits_cache: bool = True,
        **unused: Any,
    ) -> None:
        super().__init__()
        if pretrained is None:
            raise LLMOSError(
                "the llmos model type needs pretrained=PATH (a checkpoint directory, GGUF file "
                "or model name such as smollm2)"
            )
        for name in _IGNORED_ARGS:
            unused.pop(name, None)
        if unused:
            raise LLMOSError(
                f"unknown model_args for --model llmos: {sorted(unused)}; valid: pretrained, "
                "tokenizer, dtype, batch_size, max_batch_size, max_length, device, quantize, "
                "adapter, add_bos_token, prefix_token_id, max_gen_toks, logits_cache"
            )
        self._device = _resolve_device(device)
        self._model, self.tokenizer, self.pretrained = _load(
            pretrained, tokenizer, dtype, quantize, adapter, self._device
        )
        self._model.eval()
        self.batch_size_per_gpu = _resolve_batch_size(batch_size, max_batch_size)
        self._max_length = int(max_length) if max_length else None
        self._max_gen_toks = int(max_gen_toks)
        self.add_bos_token = add_bos_token
        self.custom_prefix_token_id = prefix_token_id
        self.logits_cache = logits_cache
        if self.eot_token_id is None:
            raise LLMOSError(
                "the tokenizer has no eos token and the model config no eos_token_id; "
                "lm-eval needs one to end generations"
            )

    # ---- what lm-eval asks of a model --------------------------------------------------------

    @property
    def model(self) -> torch.nn.Module:
        return self._model

    @property
    def eot_token_id(self) -> int | None:
        eos = self.tokenizer.eos_token_id
        if eos is None:
            configured = token_id_list(getattr(self._model.config, "eos_token_id", None))
            eos = configured[0] if configured else None
        return eos

    @property
    def prefix_token_id(self) -> int:
        """The token that stands in for an empty context (as lm-eval's hf backend: BOS, else EOS)."""
        if self.custom_prefix_token_id is not None:
            return self.custom_prefix_token_id
        if self.tokenizer.bos_token_id is not None:
            return self.tokenizer.bos_token_id
        return self.eot_token_id

    @property
    def max_length(self) -> int:
        return self._max_length or self._model.config.max_seq_len

    @property
    def max_gen_toks(self) -> int:
        return self._max_gen_toks

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def tokenizer_name(self) -> str:
        return str(self.pretrained).replace("/", "__")

    def get_model_info(self) -> dict:
        return {
            "model_num_parameters": self._model.num_parameters(),
            "model_dtype": str(self._model.dtype),
            "model_revision": "",
            "model_sha": "",
        }

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history, add_generation_prompt=add_generation_prompt, tokenize=False
        )

    # ---- tokenization (as lm-eval's hf backend) ---------------------------------------------

    def tok_encode(
        self,
        string: str,
        add_special_tokens: bool | None = None,
        left_truncate_len: int | None = None,
        **kwargs: Any,
    ) -> list[int]:
        """Text -> ids with the tokenizer's own special tokens (BOS for Llama-style ones), unless
        `add_special_tokens` says otherwise or the text already starts with the BOS string."""
        add = self._add_special_tokens(string, add_special_tokens)
        ids = self.tokenizer.encode(string, add_special_tokens=add)
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def _add_special_tokens(self, string: str, requested: bool | None) -> bool:
        if requested is not None:
            return requested
        if self.add_bos_token is not None:
            return self.add_bos_token
        prefix = self.tokenizer.decode([self.prefix_token_id])
        return not has_bos_prefix(string, prefix)

    def tok_decode(self, tokens: list[int] | int, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)

    # ---- scoring -----------------------------------------------------------------------------

    @torch.inference_mode()
    def _model_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, T) right-padded ids -> (B, T, V) logits; causal attention keeps padding out of view."""
        return self._model(batch).logits

    def _loglikelihood_tokens(
        self, requests: list, disable_tqdm: bool = False, **kwargs: Any
    ) -> list:
        """[(cache key, context ids, continuation ids)] -> [(sum log p(continuation), is greedy)].

        Longest first, in batches; requests with equal context + continuation[:-1] share one
        forward pass (lm-eval's logits cache), as in the hf backend. A shorter continuation
        served that way is scored on the trailing positions (lm-eval 0.4.13's hf backend
        reads the leading ones, which only matters when token sequences repeat exactly)."""

        def longest_first(req):
            toks = req[1] + req[2]
            return -len(toks), tuple(toks)

        order = Collator(
            requests,
            sort_fn=longest_first,
            group_by="contexts" if self.logits_cache else None,
            group_fn=lambda req: req[-2] + req[-1][:-1],
        )
        results = []
        for chunk in order.get_batched(n=self.batch_size):
            inputs = []
            for _, context, continuation in chunk:
                if len(context) + len(continuation) > self.max_length + 1:
                    log.warning(
                        "context (%d tokens) + continuation (%d) exceed max_length %d: keeping the "
                        "last %d tokens",
                        len(context),
                        len(continuation),
                        self.max_length,
                        self.max_length + 1,
                    )
                inputs.append((context + continuation)[-(self.max_length + 1) :][:-1])
            width = max(len(ids) for ids in inputs)
            batch = torch.tensor(
                [ids + [0] * (width - len(ids)) for ids in inputs], device=self.device
            )
            logits = self._model_logits(batch)  # (B, T, V)
            for (key, context, continuation), ids, row in zip(chunk, inputs, logits, strict=True):
                # (n_cont, V): the positions that predict the continuation
                scored = row[len(ids) - len(continuation) : len(ids)]
                log_probs = F.log_softmax(scored.float(), dim=-1)[None]  # (1, n_cont, V)
                greedy = log_probs.argmax(dim=-1)
                for key_, cont, lp in order.get_cache(
                    req_str=key, cxt_toks=context, cont_toks=continuation, logits=log_probs
                ):
                    target = torch.tensor(cont, device=self.device)[None]  # (1, n)
                    is_greedy = bool((greedy[:, -target.shape[1] :] == target).all())
                    answer = (
                        float(lp[:, -target.shape[1] :].gather(2, target[..., None]).sum()),
                        is_greedy,
                    )
                    results.append(answer)
                    if key_ is not None:
                        self.cache_hook.add_partial("loglikelihood", key_, answer)
        return order.get_original(results)

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of whole texts (perplexity tasks), in windows of `max_length` tokens."""
        windows, counts = [], []
        for (string,) in (req.args for req in requests):
            pieces = [
                lm_eval_utils.make_disjoint_window(w)
                for w in lm_eval_utils.get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                )
            ]
            windows.extend((None, context, continuation) for context, continuation in pieces)
            counts.append(len(pieces))
        scores = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm)
        totals, start = [], 0
        for req, count in zip(requests, counts, strict=True):
            total = sum(score for score, _ in scores[start : start + count])
            start += count
            totals.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    # ---- generation --------------------------------------------------------------------------

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        """Continue each context until one of its `until` strings (or EOS, or max_gen_toks tokens),
        in batches of requests with equal generation settings; greedy unless do_sample."""
        order = Collator(
            [req.args for req in requests],
            sort_fn=lambda req: (-len(self.tok_encode(req[0])), req[0]),
            group_by="gen_kwargs",
            group_fn=lambda req: req[1],
        )
        eos_text = self.tok_decode([self.eot_token_id], skip_special_tokens=False)
        results = []
        for chunk in order.get_batched(n=self.batch_size):
            contexts, settings = zip(*chunk, strict=True)
            texts = self._generate(list(contexts), settings[0], eos_text)
            for context, gen_kwargs, text in zip(contexts, settings, texts, strict=True):
                results.append(text)
                self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return order.get_original(results)

    def _generate(self, contexts: list[str], gen_kwargs: dict, eos_text: str) -> list[str]:
        kwargs = dict(normalize_gen_kwargs(gen_kwargs, self.max_gen_toks))
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
        max_new = kwargs.pop("max_gen_toks")
        if max_new >= self.max_length:
            raise LLMOSError(
                f"max_gen_toks={max_new} leaves no room for the prompt in max_length="
                f"{self.max_length}; lower max_gen_toks or raise max_length"
            )
        input_ids, mask = self._left_padded(contexts, self.max_length - max_new)
        if "max_length" in kwargs:  # HF meaning: prompt + new tokens
            max_new = max(1, int(kwargs.pop("max_length")) - input_ids.shape[1])
        do_sample = bool(kwargs.pop("do_sample", False))
        temperature = float(kwargs.pop("temperature", 0.0))
        if do_sample and temperature > 0:
            kwargs["temperature"] = temperature
        eos_ids = self._eos_ids()
        stops = [s for s in until if s and s != eos_text]
        output = self._model.generate(
            input_ids,
            attention_mask=mask,
            max_new_tokens=max_new,
            do_sample=do_sample,
            eos_token_id=eos_ids,
            stop_strings=stops or None,
            tokenizer=self.tokenizer,
            **kwargs,
        )  # (B, T + new)
        texts = []
        for row in output[:, input_ids.shape[1] :].tolist():
            ends = [i for i, token in enumerate(row) if token in eos_ids]
            text = self.tok_decode(row[: ends[0]] if ends else row)
            texts.append(postprocess_generated_text(text, until, None))
        return texts

    def _left_padded(
        self, contexts: list[str], max_context: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Contexts -> (B, T) ids left-padded to the longest and left-truncated to `max_context`,
        with the (B, T) attention mask; BOS as the hf backend decides it for the batch."""
        if has_bos_prefix(contexts[0], self.tokenizer.bos_token):
            add = False
        else:
            add = self.add_bos_token if self.add_bos_token is not None else True
        rows = [self.tokenizer.encode(text, add_special_tokens=add) for text in contexts]
        if any(len(row) > max_context for row in rows):
            log.warning(
                "a prompt is longer than max_length - max_gen_toks = %d tokens: keeping its last %d",
                max_context,
                max_context,
            )
        rows = [row[-max_context:] for row in rows]
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.eot_token_id
        )
        ids, mask = left_pad(rows, pad)
        return ids.to(self.device), mask.to(self.device)

    def _eos_ids(self) -> list[int]:
        """The model's end-of-sequence ids plus the tokenizer's (lm-eval always stops at the latter)."""
        from llmos.generation.request import resolve_config

        configured = resolve_config(self._model, None, {}).eos_token_ids
        return list(dict.fromkeys([*configured, self.eot_token_id]))


# ---- loading ---------------------------------------------------------------------------------


def _resolve_device(device: str | None) -> torch.device:
    """The requested device; CUDA when none is named and there is one. lm-eval's CLI asks for
    cuda:0 unless told otherwise, so that request falls back to the CPU, with a warning."""
    cuda = torch.cuda.is_available()
    if device is None:
        return torch.device("cuda" if cuda else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not cuda:
        log.warning("device=%s but CUDA is not available here: running on the CPU", device)
        return torch.device("cpu")
    return resolved


def _resolve_batch_size(batch_size: int | str, max_batch_size: int | None) -> int:
    if str(batch_size).startswith("auto"):
        size = int(max_batch_size) if max_batch_size else DEFAULT_AUTO_BATCH_SIZE
        log.warning(
            "batch_size=%s: LLMOS does not probe memory; using batch_size=%d (set max_batch_size "
            "or an explicit batch_size to change it)",
            batch_size,
            size,
        )
        return size
    try:
        size = int(batch_size)
    except (TypeError, ValueError):
        size = 0
    if size < 1:
        raise LLMOSError(f"batch_size={batch_size!r} is invalid; give an integer >= 1 or 'auto'")
    return size


def _load(
    pretrained: Any,
    tokenizer: Any,
    dtype: Any,
    quantize: str | None,
    adapter: str | None,
    device: torch.device,
) -> tuple[torch.nn.Module, Any, str]:
    """(model on `device`, tokenizer, a name for it) from a path/name or a ready LLMOS model.

    `adapter` is a LoRA adapter directory (PEFT format) put on the base; `pretrained` may
    itself be one, and its tokenizer is then the base model's unless it has its own."""
    from llmos.auto import AutoTokenizer
    from llmos.checkpoint.peft_format import load_adapter
    from llmos.generation.loading import load_model

    if isinstance(pretrained, torch.nn.Module):
        if tokenizer is None:
            raise LLMOSError("pretrained= is a model object; pass its tokenizer= as well")
        model, name = pretrained, type(pretrained).__name__
        if adapter is not None:
            load_adapter(model, adapter)
    else:
        name = str(pretrained)
        kernels = None if device.type == "cpu" else False
        loaded = load_model(pretrained, dtype=dtype, quantize=quantize, kernels=kernels, adapter=adapter,
                            tokenizer=tokenizer is None)
        model = loaded.model
        tokenizer = loaded.tokenizer if tokenizer is None else tokenizer
    if isinstance(tokenizer, (str, Path)):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    if model.device != device:
        model = model.to(device)
    return model, tokenizer, name


# ---- the command -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """lm-eval's own CLI (every flag as documented by lm-eval) with `--model llmos` available."""
    register()
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


register()

if __name__ == "__main__":
    main()

"""Layer 5: one decode step (a token per row in, the next-token logits out), compiled once and reused.

A decode step runs ~300 small ops for a 30-layer model; in eager PyTorch about
a third of a CPU token's time is Python and per-op overhead. Compiled with
Inductor (`fullgraph=True`, a C++ wrapper instead of a Python one) the step
becomes one call into generated code. The model is shaped for it (see
`llmos.model.cache`): the step writes at a position tensor and attends over
the whole cache under a mask, so its graph is the same at every position. The
cache's length and the batch size are dynamic dimensions: one graph serves
batch 1 at every length (another serves 2 and more rows). A generation's
first step goes through Dynamo, its later ones call the same graph directly
(`llmos.generation.graph_replay`: Dynamo's ~1 ms a call saved on every token of
SmolLM2). A second process loads the graphs from Inductor's on-disk cache
instead of compiling again:
~/.cache/llmos/inductor/<torch version>-int_dot-<its source hash> (a
TORCHINDUCTOR_CACHE_DIR of your own wins). The integer kernels' build is part
of the name because Inductor's key does not cover a custom op's schema: a graph
cached against an older int_dot would call it with the old arguments.

`LLMOS_COMPILE=0` (or `set_compile(False)`) keeps every step eager; the
default compiles on CPU. The first compile of a model logs how long it took;
one that fails logs why, once, and the model stays eager.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch

from llmos.adapters import active_adapter
from llmos.generation.graph_replay import Replay, recorded, recording_backend
from llmos.kernels import build
from llmos.measured import cache_dir
from llmos.model.cache import KVCache
from llmos.process_memory import give_back_freed_memory

log = logging.getLogger("llmos.compile")
_ENABLED: bool | None = None  # set_compile's choice; None: the environment decides
_COMPILED_ATTR = "_llmos_decode_step"
_FAILED_ATTR = "_llmos_decode_step_failed"
_replays: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # scope -> {(model, step, rows?): Replay}


def set_compile(enabled: bool | None) -> None:
    """Compile decode steps (True), keep them eager (False), or let LLMOS_COMPILE decide (None)."""
    global _ENABLED
    _ENABLED = enabled


def compile_wanted(model: Any) -> bool:
    """Whether `model`'s decode steps are compiled: LLMOS_COMPILE=1/0 or set_compile force it; by
    default CPU models compile (where eager overhead costs most)."""
    if getattr(model, _FAILED_ATTR, False):
        return False
    choice = _ENABLED
    if choice is None:
        setting = os.environ.get("LLMOS_COMPILE", "auto").lower()
        if setting in ("0", "false", "no", "off"):
            return False
        choice = True if setting in ("1", "true", "yes", "on") else model.device.type == "cpu"
    return choice


def _kv_step(model: Any, tokens: torch.Tensor, cache_position: torch.Tensor, position_ids: torch.Tensor,
             attention_mask: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor]) -> torch.Tensor:
    """The traced function of `next_logits`: a cache over the given buffers, one forward, last logits."""
    for buffer in (*keys, *values):  # one length, one symbol in the graph (else one argument per buffer)
        torch._check(buffer.shape[2] == attention_mask.shape[1])
    cache = KVCache.over(keys, values)
    out = model(tokens, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                cache_position=cache_position, logits_to_keep=1)
    return out.logits[:, -1].float()


def next_logits(model: Any, tokens: torch.Tensor, cache: KVCache, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Run one step: `tokens` (N, 1) go to the cache's next column; returns their logits (N, V) in float32.

    attention_mask: (N, up to cache.max_len) padding mask (1 = real), or None; position_ids: (N, 1), or
    None for the column itself. Advances `cache`."""
    if not compile_wanted(model):
        out = model(tokens, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                    logits_to_keep=1)
        return out.logits[:, -1].float()
    N, device = tokens.shape[0], tokens.device
    cache_position = torch.tensor([cache.length], device=device)
    if cache.length + 1 > cache.max_len:
        raise ValueError(f"KV cache overflow: {cache.length + 1} positions requested, cache holds "
                         f"max_len={cache.max_len}")
    if attention_mask is None:
        attention_mask = torch.ones(N, cache.max_len, dtype=torch.long, device=device)
    elif attention_mask.shape[1] < cache.max_len:
        attention_mask = torch.nn.functional.pad(attention_mask, (0, cache.max_len - attention_mask.shape[1]),
                                                 value=1)
    if position_ids is None:
        position_ids = cache_position.repeat(N, 1)
    # Dense inputs: a strided view (a beam's column of its sequences) would be another graph.
    tokens, position_ids, attention_mask = tokens.contiguous(), position_ids.contiguous(), attention_mask.contiguous()
    rows = (tokens, position_ids, attention_mask, *cache.k, *cache.v) if N > 1 else ()
    logits = run_step(model, _kv_step, (tokens, cache_position, position_ids, attention_mask, cache.k, cache.v),
                      lengths=[(attention_mask, 1)] + [(t, 2) for t in (*cache.k, *cache.v)], rows=rows, scope=cache)
    cache.advance(1)
    return logits


def run_step(model: Any, step: Callable[..., torch.Tensor], args: tuple, lengths: list[tuple[torch.Tensor, int]],
             rows: tuple[torch.Tensor, ...] = (), scope: object | None = None) -> torch.Tensor:
    """`step(model, *args)`, compiled once per (model, step) when compiling is wanted, else eager.

    lengths: (tensor, dim) pairs whose size is a history length, dynamic in the graph; rows: tensors whose
    first dimension counts rows, dynamic when given (pass none for one row: that graph is specialised).
    scope: an object that outlives a run of steps on an unchanged model (a generation's cache): after
    its first step of a kind (one row or several) through Dynamo, its later ones replay that graph
    (`graph_replay`). A step through a LoRA adapter (one is active) runs eagerly: a graph per
    adapter state would recompile at every switch between a tool request and a plain one."""
    if not compile_wanted(model) or active_adapter(model) is not None:
        return step(model, *args)
    kind = (model, step, bool(rows))
    replays = _replays.get(scope) if scope is not None else None
    if replays is not None and kind in replays:
        try:
            return replays[kind](args)
        except RuntimeError:  # shapes its graph was not built for (its size checks): Dynamo decides again
            del replays[kind]  # (a step that failed midway rewrote only its own keys and values: none is lost)
    for tensor, dim in lengths:
        torch._dynamo.maybe_mark_dynamic(tensor, dim)
    for tensor in rows:
        torch._dynamo.maybe_mark_dynamic(tensor, 0)
    steps = getattr(model, _COMPILED_ATTR, None)
    if steps is None:
        steps = {}
        object.__setattr__(model, _COMPILED_ATTR, steps)  # not a submodule: kept out of state_dict
    if not steps:
        log.warning("preparing the compiled decode step (once per process: compiled the first time, then "
                    "loaded from the disk cache; LLMOS_COMPILE=0 decodes without it)...")
    graphs = _graph_count()
    started = time.perf_counter()
    try:
        if step not in steps:
            use_our_inductor_cache()
            # cpp_wrapper: the step is one call into C++ (a Python wrapper costs ~1 ms of a ~6 ms token);
            # built separately from the kernels, the wrapper of a 30-layer model compiles in ~1/3 the time
            # (measured: 74 s instead of ~125 s on a loaded 2-core host), at no cost per token measured.
            backend = recording_backend({"cpp_wrapper": True, "cpp_wrapper_build_separate": True})
            steps[step] = torch.compile(functools.partial(step, model), fullgraph=True, dynamic=False,
                                        backend=backend)
        # Dynamo checks its guards (the model's ~430 tensors among them) at a scope's first step and at
        # every step without a scope; with dict tags it skips the subtrees whose dicts did not change
        # (read when a graph is built). Every (model, step) is one code object to Dynamo (the wrapper
        # it runs a functools.partial through), so all of a process's step graphs count towards one
        # recompile limit: 8 by default, hit by a fifth model (a graph for 1 row and one for more).
        with torch._dynamo.config.patch(use_recursive_dict_tags_for_guards=True, recompile_limit=64), \
                recorded() as calls:
            out = steps[step](*args)
    except Exception as exc:  # a host without a working compiler: eager from now on, said once
        object.__setattr__(model, _FAILED_ATTR, True)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.warning("compiling the decode step failed (%s: %s); decoding eagerly", type(exc).__name__, first_line)
        return step(model, *args)
    if _graph_count() > graphs:
        log.warning("decode step for %s ready in %.1f s", "several rows" if rows else "1 row",
                    time.perf_counter() - started)
        give_back_freed_memory()
    if scope is not None:
        replay = Replay.of(calls, args, out, model)
        if replay is not None:
            _replays.setdefault(scope, {})[kind] = replay
    return out


def use_our_inductor_cache() -> None:
    """Point Inductor's on-disk cache at ours (see the top) unless someone chose another: importing
    torch._dynamo writes Inductor's default into TORCHINDUCTOR_CACHE_DIR, so that value means none was."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen is None or os.path.abspath(chosen) == os.path.abspath(default_cache_dir()):
        version = torch.__version__.replace("+", "-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir() / "inductor" / f"{version}-int_dot-{build.source_hash()}")


def _graph_count() -> int:
    """How many graphs Dynamo has compiled in this process (a new one means this call compiled)."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])

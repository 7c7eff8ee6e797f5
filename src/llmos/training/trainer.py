"""Layer 6: the training loop: one objective, one model, batches in, checkpoints out.

What the loop does each optimizer step: set the learning rate from the
schedule, run `grad_accum` micro-batches (forward under bf16 autocast when
`dtype` is bfloat16, or auto and bf16 measures faster on this machine;
backward of loss / grad_accum; DDP syncs gradients on the last one only),
clip the gradient norm, AdamW step, clear gradients. Every `eval_every`
steps (and at the end) it evaluates on fixed validation batches and writes the
`last` checkpoint (and `best`, when validation loss improved) atomically.
What the loss *is* belongs to the objective (`objectives.py`), so fine-tuning
reuses this loop unchanged.

Exact resume: a checkpoint holds model, optimizer moments, step (the schedule
is a function of it), every RNG state and the data iterator's position, so
stopping at step k and resuming reproduces the same losses as never stopping,
and no batch is seen twice.

Stopping on request: while `train()` runs in the main thread, SIGTERM (what the
studio's Stop button and most schedulers send) sets a flag instead of killing the
process; the loop ends after the step in progress and takes its usual end path, so
`last` is written and a resumed run continues exactly. The previous handler is put
back when `train()` returns. (Under torchrun every process receives the signal.)
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmos.errors import LLMOSError
from llmos.kernels import use_kernels
from llmos.kernels.choice import bf16_products
from llmos.training import distributed as dist_utils
from llmos.training import state as ckpt
from llmos.training.metrics import MetricsLog, plot_loss_curve
from llmos.training.mfu import backward_of, matmul_peak, mfu, training_flops_per_token
from llmos.training.objectives import Objective, shard_batch, to_device
from llmos.training.optim import build_optimizer
from llmos.training.progress import TrainingProgress
from llmos.training.recipe import RunConfig
from llmos.training.run_lock import training_lock
from llmos.training.schedule import learning_rate


@dataclass
class TrainResult:
    steps: int
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, train loss) as logged
    evals: list[dict[str, Any]] = field(default_factory=list)
    best_val_loss: float = math.inf
    tokens_per_second: float = 0.0
    mfu: float = 0.0
    seconds: float = 0.0
    run_dir: Path | None = None

    @property
    def final_eval(self) -> dict[str, Any]:
        return self.evals[-1] if self.evals else {}


class Trainer:
    """Runs `config` on `model` with `objective`.

    train_batches: an iterator of global batches; if it has state_dict()/load_state_dict()
    its position is checkpointed. eval_batches: a re-iterable of validation batches, or a
    callable returning one (called at each evaluation), or None.
    """

    def __init__(
        self,
        model: nn.Module,
        config: RunConfig,
        objective: Objective,
        train_batches: Iterator[Any],
        eval_batches: Iterable[Any] | Callable[[], Iterable[Any]] | None = None,
        tokenizer: Any = None,
        ctx: dist_utils.DistributedContext | None = None,
        model_files: ckpt.ModelFiles | None = None,
    ) -> None:
        self.config, self.objective, self.tokenizer = config, objective, tokenizer
        self.model_files = model_files or ckpt.WholeModel()  # a LoRA run saves its adapter only
        self.ctx = ctx or dist_utils.DistributedContext()
        self.model_config = model.config
        self.run_dir = Path(config.out_dir)
        self.train_batches, self.eval_batches = train_batches, eval_batches
        check_context(config.context, self.model_config)
        if config.batch_size % self.ctx.world_size:
            raise LLMOSError(
                f"batch_size={config.batch_size} must be divisible by the {self.ctx.world_size} "
                "processes (each takes an equal slice of the global batch)"
            )
        torch.manual_seed(config.seed)
        self.model = use_kernels(model.to(self.ctx.device))  # oneDNN linears, fused head loss (CPU)
        self.wrapped = dist_utils.wrap_model(self.model, self.ctx, config.distributed)
        self.optimizer = build_optimizer(
            self.model, config.lr, config.weight_decay, (config.beta1, config.beta2),
            fused=False if (config.distributed == "fsdp" and self.ctx.enabled) else None,
        )
        self.forward_model = torch.compile(self.wrapped) if config.compile else self.wrapped
        self.bf16 = autocast_bf16(config.dtype, self.ctx.device)  # dtype "auto": measured on this machine
        self.step, self.tokens_seen, self.best_val_loss, self.elapsed = 0, 0, math.inf, 0.0
        self.stop_requested = False  # set by SIGTERM during train(); the loop then ends and saves `last`
        self.num_parameters = self.model.num_parameters()
        self.flops_per_token = training_flops_per_token(self.model_config, self.num_parameters, config.context,
                                                         objective.head_fraction, backward_of(self.model))

    # ---- the loop ------------------------------------------------------------

    def train(self) -> TrainResult:
        """Run the loop to max_steps (or a stop); the main process holds the run folder's lock meanwhile."""
        with training_lock(self.run_dir) if self.ctx.is_main else contextlib.nullcontext():
            return self._train()

    def _train(self) -> TrainResult:
        cfg, ctx = self.config, self.ctx
        resume_from = self._resume_path()
        if resume_from is not None:
            self.load(resume_from)
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save_yaml(self.run_dir / "recipe.yaml")
            log = MetricsLog(self.run_dir / "metrics.jsonl", self.step if resume_from else None)
        # tokens/s counts every process's tokens, so the peak is that of all processes together.
        peak = matmul_peak(ctx.device, torch.bfloat16 if self.bf16 else torch.float32) * ctx.world_size \
            if ctx.is_main else 0.0
        result = TrainResult(steps=self.step, best_val_loss=self.best_val_loss, run_dir=self.run_dir)
        autocast = torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        params = [p for p in self.model.parameters() if p.requires_grad]
        batches = iter(self.train_batches)
        progress = TrainingProgress(cfg.max_steps, self.step, enabled=ctx.is_main and cfg.progress)
        start = time.perf_counter() - self.elapsed
        window_start, window_tokens = time.perf_counter(), 0
        self.wrapped.train()
        with progress, self._stop_on_sigterm():
            while self.step < cfg.max_steps and not self.stop_requested:
                if cfg.max_minutes and time.perf_counter() - start > 60 * cfg.max_minutes:
                    break
                if cfg.stop_at_step and self.step >= cfg.stop_at_step:
                    break
                lr = learning_rate(self.step, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                loss_sum = None  # a tensor: read (.item()) only at log steps, so no sync per step
                for micro in range(cfg.grad_accum):
                    batch = to_device(shard_batch(next(batches), ctx.rank, ctx.world_size), ctx.device)
                    sync = self._no_sync() if micro < cfg.grad_accum - 1 else contextlib.nullcontext()
                    with sync, autocast:
                        loss = self.objective.loss(self.forward_model, batch)
                    (loss / cfg.grad_accum if cfg.grad_accum > 1 else loss).backward()
                    loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
                    window_tokens += self.objective.num_tokens(batch) * ctx.world_size
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.tokens_seen += cfg.tokens_per_step
                last_step = self.step == cfg.max_steps
                if cfg.log_every and (self.step % cfg.log_every == 0 or last_step):
                    loss_value = dist_utils.mean_across_processes(loss_sum / cfg.grad_accum, ctx).item()
                    seconds = time.perf_counter() - window_start
                    tps = window_tokens / seconds if seconds > 0 else 0.0
                    utilization = mfu(self.flops_per_token, tps, peak)
                    result.losses.append((self.step, loss_value))
                    result.tokens_per_second, result.mfu = tps, utilization
                    if ctx.is_main:
                        log.write({"kind": "train", "step": self.step, "loss": loss_value, "lr": lr,
                                   "tokens": self.tokens_seen, "tokens_per_second": round(tps, 1),
                                   "mfu": round(utilization, 4),
                                   "elapsed": round(time.perf_counter() - start, 3)})
                    progress.update(self.step, loss=loss_value, tokens_per_second=tps, mfu=utilization)
                    window_start, window_tokens = time.perf_counter(), 0
                if cfg.eval_every and self.step % cfg.eval_every == 0 and not last_step:
                    progress.evaluated(self.step, self._evaluate_and_save(result, log if ctx.is_main else None, start))
                    window_start, window_tokens = time.perf_counter(), 0
                progress.advance(self.step)
            progress.evaluated(self.step, self._evaluate_and_save(result, log if ctx.is_main else None, start))
        result.steps, result.best_val_loss = self.step, self.best_val_loss
        result.seconds = time.perf_counter() - start
        if ctx.is_main:
            plot_loss_curve(self.run_dir / "metrics.jsonl", self.run_dir / "loss_curve.png")
        dist_utils.barrier(ctx)
        return result

    @contextlib.contextmanager
    def _stop_on_sigterm(self) -> Iterator[None]:
        """SIGTERM sets `stop_requested` while the loop runs (signal handlers live in the main thread only)."""
        self.stop_requested = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            self.stop_requested = True

        previous = signal.signal(signal.SIGTERM, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _no_sync(self):
        no_sync = getattr(self.wrapped, "no_sync", None)
        return no_sync() if no_sync is not None else contextlib.nullcontext()

    def evaluate(self) -> dict[str, float]:
        """Validation metrics on the fixed eval batches (dropout off, no gradients)."""
        if self.eval_batches is None:
            return {}
        batches = self.eval_batches() if callable(self.eval_batches) else self.eval_batches
        autocast = torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        self.wrapped.eval()
        try:
            with autocast:
                local = (to_device(shard_batch(b, self.ctx.rank, self.ctx.world_size), self.ctx.device)
                         for b in batches)
                return self.objective.evaluate(
                    self.forward_model, local,
                    sum_across=lambda totals: dist_utils.sum_across_processes(totals, self.ctx))
        finally:
            self.wrapped.train()

    def _evaluate_and_save(self, result: TrainResult, log: MetricsLog | None, start: float) -> dict[str, float]:
        metrics = self.evaluate()
        self.elapsed = time.perf_counter() - start
        improved = "val_loss" in metrics and metrics["val_loss"] < self.best_val_loss
        if improved:
            self.best_val_loss = metrics["val_loss"]
        if metrics:
            record = {"kind": "eval", "step": self.step, "elapsed_s": round(self.elapsed, 3), **metrics}
            result.evals.append(record)
            if log is not None:
                log.write(record)
        self.save(self.run_dir / "last")
        if improved or (self.eval_batches is None and self.ctx.is_main):
            self.save(self.run_dir / "best")
        return metrics

    # ---- checkpoints ---------------------------------------------------------

    def trainer_state(self) -> dict[str, Any]:
        data_state = self.train_batches.state_dict() if hasattr(self.train_batches, "state_dict") else None
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
            "elapsed_seconds": self.elapsed,
            "data_state": data_state,
            "train_config": self.config.to_dict(),
            "model_config": self.model_config.to_dict(),
            "world_size": self.ctx.world_size,
        }

    def save(self, directory: str | Path) -> None:
        """Write a full trainer checkpoint (collective under FSDP; rank 0 writes)."""
        model_to_save, optim_state = self._full_states()
        if self.ctx.is_main:
            ckpt.write_checkpoint(directory, model_to_save, optim_state, self.trainer_state(), self.tokenizer,
                                  self.model_files)
        dist_utils.barrier(self.ctx)

    def load(self, directory: str | Path) -> None:
        directory = ckpt.resolve_checkpoint(directory)
        saved = ckpt.read_trainer_state(directory)
        ckpt.check_same_config(saved["model_config"], self.model_config, directory)
        optim_state, rng = ckpt.read_optimizer_and_rng(directory, saved["optimizer_param_groups"])
        if self.ctx.enabled and self.config.distributed == "fsdp":
            fresh = type(self.model)(self.model_config)
            ckpt.load_model_weights(fresh, directory)
            full = dict(fresh.named_parameters())
            params = dict(self.model.named_parameters())
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(dist_utils.shard_like(full[name], p))
            ordered = [p for g in self.optimizer.param_groups for p in g["params"]]
            for index, slots in optim_state["state"].items():
                for slot, value in slots.items():
                    if value.dim() > 0:
                        slots[slot] = dist_utils.shard_like(value, ordered[index])
            self.optimizer.load_state_dict(optim_state)
        else:
            self.model_files.load(self.model, directory)
            self.optimizer.load_state_dict(optim_state)
        self.step, self.tokens_seen = saved["step"], saved["tokens_seen"]
        self.best_val_loss = saved["best_val_loss"] if saved["best_val_loss"] is not None else math.inf
        self.elapsed = saved.get("elapsed_seconds", 0.0)
        if saved.get("data_state") is not None and hasattr(self.train_batches, "load_state_dict"):
            self.train_batches.load_state_dict(saved["data_state"])
        ckpt.set_rng_state(rng, saved["rng"])

    def _full_states(self) -> tuple[nn.Module, dict[str, Any]]:
        if not (self.ctx.enabled and self.config.distributed == "fsdp"):
            return self.model, self.optimizer.state_dict()
        # Every process takes part in gathering each sharded tensor; rank 0 keeps the result.
        model_state = {n: dist_utils.full_tensor(p) for n, p in self.model.named_parameters()}
        optim_state = self.optimizer.state_dict()
        optim_state["state"] = {i: {k: dist_utils.full_tensor(v) for k, v in slots.items()}
                                for i, slots in optim_state["state"].items()}
        if not self.ctx.is_main:
            return self.model, {}
        full = type(self.model)(self.model_config)
        full.load_state_dict(model_state, strict=False)
        return full, optim_state

    def _resume_path(self) -> Path | None:
        resume = self.config.resume
        if not resume:
            return None
        if resume == "auto":
            last = self.run_dir / "last"
            has = last.is_dir() or last.with_name("last.old").is_dir()
            return last if has else None
        return Path(resume)


def check_context(context: int, config: Any) -> None:
    """A training context must fit the model's position range."""
    if context > config.max_seq_len:
        raise LLMOSError(
            f"context={context} is longer than the model allows (max_seq_len={config.max_seq_len}"
            f"{', the size of its ' + config.position + ' position table' if config.position in ('learned', 'sinusoidal') else ''}); "
            f"use --context <= {config.max_seq_len} or a model with a larger max_seq_len"
        )


def autocast_bf16(dtype: str, device: torch.device) -> bool:
    """Whether a run of `dtype` computes under bf16 autocast: "bfloat16" always, "float32" never,
    "auto" where bf16 pays: on a CPU when its products measure faster than fp32 there
    (`kernels.choice.bf16_products`: native bf16 several times faster, AVX2 several times slower),
    on CUDA when the GPU supports bf16."""
    if dtype != "auto":
        return dtype == "bfloat16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(bf16_products()["bf16_pays"])

"""Layer 6: data parallelism under `torchrun`: DDP by default, FSDP as an option.

`torchrun --nproc_per_node N llmos pretrain ...` sets RANK / WORLD_SIZE /
LOCAL_RANK; `setup()` reads them, starts the process group (gloo on CPU, nccl
on GPU) and picks the device. Without them everything here is a no-op, so the
trainer has a single code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> DistributedContext:
    """Join the torchrun process group if launched by torchrun; choose the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu" if device == "auto" else device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank, dev)


def wrap_model(model: nn.Module, ctx: DistributedContext, strategy: str = "ddp") -> nn.Module:
    """DDP (replicated weights, averaged gradients) or FSDP (sharded weights and optimizer state)."""
    if not ctx.enabled:
        return model
    if strategy == "fsdp":
        import warnings

        from torch.distributed.fsdp import fully_shard

        # Logits come back as a reshaped view of the head's 2-D output; nothing here
        # modifies them in place, which is the only case this warning is about.
        warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")

        for block in getattr(getattr(model, "transformer", None), "blocks", []):
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def full_tensor(value: torch.Tensor) -> torch.Tensor:
    """The whole of a (possibly FSDP-sharded) tensor, on CPU (a collective for sharded ones)."""
    if hasattr(value, "full_tensor"):
        value = value.full_tensor()
    return value.detach().cpu()


def shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`full` cut the way `like` is sharded (unchanged when `like` is a plain tensor)."""
    if hasattr(like, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(full.to(like.device), like.device_mesh, like.placements)
    return full.to(like.device)


def sum_across_processes(value: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    if ctx.enabled:
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def mean_across_processes(value: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    return sum_across_processes(value, ctx) / ctx.world_size


def barrier(ctx: DistributedContext) -> None:
    if ctx.enabled:
        dist.barrier()


def teardown(ctx: DistributedContext) -> None:
    if ctx.enabled and dist.is_initialized():
        # Every process arrives before any tears down: without it, gloo under FSDP could
        # abort a process still finishing its last collective at exit.
        dist.barrier()
        dist.destroy_process_group()

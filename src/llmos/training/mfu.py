"""Layer 6: model FLOPs utilization (MFU) against this machine's measured matmul peak.

Peak: instead of a datasheet number, a short benchmark times square fp32
matmuls (the best of a few sizes and repeats) with the current thread count,
through every matmul kernel torch offers on the device: torch.mm (MKL/OpenBLAS
on CPU, cuBLAS on GPU) and, on CPU, oneDNN's inner product (the kernel LLMOS'
linears use; on this project's AMD Zen 3 it is ~2x MKL's sgemm). The peak is
the best of them, so MFU is against what the machine can do, not against one
library's slow path. A run under bf16 autocast is measured against bf16
matmuls (on a CPU with native bf16 they are ~2x fp32's, so against the fp32
peak its MFU went over 100%). The result is cached in
~/.cache/llmos/matmul_peak.json (see llmos.measured) keyed by device, threads,
kernel set and dtype, so it runs once per machine setting.

Model FLOPs per trained token (the PaLM / nanoGPT convention):
    6 * N  +  12 * n_layers * d_attn * T
where N counts the parameters that take part in matmuls (everything except
position-embedding tables; a tied token embedding counts once, as the LM head),
6 = 2 (multiply-add) * 3 (forward + the two backward matmuls), and the second
term is the attention scores and weighted sum (QK^T and AV) over a context of T,
with d_attn = n_heads * head_dim. MFU = flops_per_token * tokens_per_second / peak.
With frozen parameters (LoRA, freeze_layers) the backward pass does less, and
the count follows it (`Backward`): no gradients at all below the lowest block
that trains (4 * their parameters, and 8 * d_attn * T of attention a block
fewer), and no weight gradients of a frozen matmul (2 * its parameters fewer).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from llmos.config import ModelConfig
from llmos.kernels.onednn import ONEDNN, inner_product
from llmos.measured import measured_once


def _device_key(device: torch.device, dtype: torch.dtype) -> str:
    suffix = "" if dtype == torch.float32 else f":{str(dtype).removeprefix('torch.')}"
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}{suffix}"
    return f"cpu:threads={torch.get_num_threads()}:kernels={'+'.join(matmul_kernels(device))}{suffix}"


def matmul_kernels(device: torch.device | str = "cpu") -> dict[str, Callable[[torch.Tensor, torch.Tensor], object]]:
    """The fp32 matmul kernels available on `device`, each multiplying two n x n matrices (2 n^3 FLOPs)."""
    kernels: dict[str, Callable[[torch.Tensor, torch.Tensor], object]] = {"torch.mm": torch.mm}
    if torch.device(device).type == "cpu" and ONEDNN:
        # oneDNN computes a @ b^T for a dense b, as a linear layer does (same FLOPs as a @ b).
        kernels["oneDNN"] = inner_product
    return kernels


def measure_matmul_peaks(device: torch.device | str = "cpu", sizes: tuple[int, ...] = (512, 1024, 2048),
                         seconds_per_size: float = 0.3, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """Best matmul throughput in FLOP/s of each kernel on `device`, in `dtype` (no cache)."""
    device = torch.device(device)
    peaks: dict[str, float] = {}
    for name, kernel in matmul_kernels(device).items():
        best = 0.0
        for n in sizes:
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            kernel(a, b)  # warm-up
            deadline = time.perf_counter() + seconds_per_size
            while time.perf_counter() < deadline:
                _sync(device)
                start = time.perf_counter()
                kernel(a, b)
                _sync(device)
                best = max(best, 2 * n**3 / (time.perf_counter() - start))
        peaks[name] = best
    return peaks


def measure_matmul_peak(device: torch.device | str = "cpu", sizes: tuple[int, ...] = (512, 1024, 2048),
                        seconds_per_size: float = 0.3, dtype: torch.dtype = torch.float32) -> float:
    """Best matmul throughput in FLOP/s on `device` over all its kernels, in `dtype` (no cache)."""
    return max(measure_matmul_peaks(device, sizes, seconds_per_size, dtype).values())


def matmul_peak(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """The cached matmul peak in `dtype` (a run under bf16 autocast: bfloat16) for `device` and the
    current thread count (measured once)."""
    device = torch.device(device)
    return float(measured_once("matmul_peak.json", _device_key(device, dtype),
                               lambda: measure_matmul_peak(device, dtype=dtype)))


def matmul_parameters(config: ModelConfig, num_parameters: int) -> int:
    """Parameters that enter matmuls: all but a learned position table."""
    if config.position == "learned":
        num_parameters -= config.max_seq_len * config.d_model
    return num_parameters


@dataclass(frozen=True)
class Backward:
    """The parameters and blocks a backward pass leaves out (all 0 when everything trains)."""

    below_parameters: int = 0  # matmul parameters of the blocks below the lowest that trains: no gradients
    below_blocks: int = 0  # how many blocks those are (their attention has no backward either)
    frozen_parameters: int = 0  # frozen matmul parameters above them: input gradients, no weight gradients


def backward_of(model: nn.Module) -> Backward:
    """What `model`'s backward pass leaves out, from which of its parameters require gradients."""
    blocks = list(model.transformer.blocks)
    lowest = next((i for i, block in enumerate(blocks) if any(p.requires_grad for p in block.parameters())),
                  len(blocks))
    below = {id(p) for block in blocks[:lowest] for p in block.parameters()}
    positions = getattr(model.transformer.embed, "positions", None)  # a learned table is a lookup, not in N
    lookups = {id(p) for p in positions.parameters()} if isinstance(positions, nn.Module) else set()
    unique = {id(p): p for p in model.parameters() if id(p) not in lookups}
    return Backward(below_parameters=sum(unique[i].numel() for i in below),
                    below_blocks=lowest,
                    frozen_parameters=sum(p.numel() for i, p in unique.items()
                                          if i not in below and not p.requires_grad))


def training_flops_per_token(config: ModelConfig, num_parameters: int, context: int,
                             head_fraction: float = 1.0, backward: Backward = Backward()) -> float:
    """6N + 12 L d_attn T: forward + backward FLOPs per token, less what `backward` leaves out
    (see module docstring).

    head_fraction: the share of tokens the output head (V x d) runs on; masked-LM
    training runs it on the masked ~15% only, so those FLOPs are not counted for the rest."""
    n = matmul_parameters(config, num_parameters) - (1.0 - head_fraction) * config.vocab_size * config.d_model
    d_attn = config.n_heads * config.head_dim
    left_out = 4.0 * backward.below_parameters + 2.0 * backward.frozen_parameters + \
        8.0 * backward.below_blocks * d_attn * context
    return 6.0 * n + 12.0 * config.n_layers * d_attn * context - left_out


def mfu(flops_per_token: float, tokens_per_second: float, peak_flops: float) -> float:
    """Model FLOPs utilization as a fraction (0.5 = 50% of peak)."""
    return flops_per_token * tokens_per_second / peak_flops if peak_flops > 0 else 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

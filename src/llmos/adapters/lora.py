"""Layer 2b (adapters): LoRA, a trainable low-rank update beside a frozen linear layer.

y = base(x) + (alpha / r) * B A dropout(x), with A (r, in) and B (out, r); B starts
at zero, so a fresh adapter changes nothing. Our model fuses q/k/v (and SwiGLU's
gate/up) into one linear, while Hugging Face and PEFT keep them apart, so one
`LoRAAdapter` holds one (A, B) pair per *part*, a row range of the fused output:
an adapter on q_proj and v_proj of a fused qkv touches exactly the q and v rows,
as PEFT's would. The A matrices of all parts are stacked so the input is read once,
and the B matrices so that one matmul writes the whole output.

`add_lora` wraps chosen linears in `LoRALinear` (the base module stays inside,
whatever it is: nn.Linear, a oneDNN or a quantized kernel). A layer can hold
several named adapters; `set_adapter` / `using_adapter` pick the one in use
(or none), so one base model serves several tasks. `merge_lora` folds an
adapter into the base weights and puts plain linears back. Which modules and
parts to target, and the PEFT file format, belong to `checkpoint.peft_format`.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from llmos.errors import LLMOSError


class LoRAError(LLMOSError):
    """A LoRA target, adapter name or adapter file does not fit the model."""


class LoRAAdapter(nn.Module):
    """One adapter on one linear: per part (start row, rows), A (r, in) and B (rows, r)."""

    def __init__(self, in_features: int, out_features: int, parts: Sequence[tuple[int, int]],
                 r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not parts:
            raise LoRAError("a LoRA adapter needs at least one part of the layer's output")
        self.r, self.alpha, self.out_features = r, alpha, out_features
        self.scale = alpha / r
        self.parts = [tuple(p) for p in sorted(parts)]
        self.A = nn.Parameter(torch.empty(r * len(self.parts), in_features))  # stacked A of each part
        self.B = nn.ParameterList(nn.Parameter(torch.zeros(rows, r)) for _, rows in self.parts)
        self.dropout_p = dropout
        self._stacked: tuple[tuple, torch.Tensor] | None = None  # (the B's versions, stacked_B) when decoding
        for block in self.A.data.split(r):  # PEFT's init: kaiming-uniform A, zero B
            nn.init.kaiming_uniform_(block, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout_p > 0:
            x = F.dropout(x, self.dropout_p, training=True)
        z = F.linear(x, self.A.to(x.dtype))  # (..., r * parts)
        return F.linear(z, self.stacked_B().to(x.dtype)) * self.scale

    def stacked_B(self) -> torch.Tensor:
        """The parts' B in one (out, r * parts) matrix, zero outside each part's rows and its r columns:
        one matmul gives every part's rows (and zeros between them), with no pieces to concatenate.
        Without gradients (decoding) it is built once and kept until a B changes (a load's copy_)."""
        if len(self.parts) == 1 and self.parts[0] == (0, self.out_features):
            return self.B[0]
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or self.A.is_inference():
            return self._stack_B()  # (an inference tensor, made under inference_mode, has no version)
        key = tuple((b.data_ptr(), b._version) for b in self.B)
        if self._stacked is None or self._stacked[0] != key:
            self._stacked = (key, self._stack_B())
        return self._stacked[1]

    def _stack_B(self) -> torch.Tensor:
        stacked = self.A.new_zeros(self.out_features, self.A.shape[0])
        for i, ((start, rows), b) in enumerate(zip(self.parts, self.B, strict=True)):
            stacked[start:start + rows, i * self.r:(i + 1) * self.r] = b
        return stacked

    @torch.no_grad()
    def delta_weight(self) -> torch.Tensor:
        """scale * B A in the layer's (out, in) shape: what merging adds to the base weight."""
        return (self.stacked_B() @ self.A) * self.scale


class LoRALinear(nn.Module):
    """A linear layer plus named LoRA adapters, at most one of them active.

    `row_gate` (B,) set: the active adapter applies to the rows where it is 1 and not to those where
    it is 0, in the same forward (a server batching requests with and without the adapter); a row
    with 0 gets exactly the base layer's output."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.adapters = nn.ModuleDict()
        self.active: str | None = None
        self.row_gate: torch.Tensor | None = None

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.active is not None and self.active in self.adapters:
            delta = self.adapters[self.active](x)
            if self.row_gate is not None:  # (B,) -> (B, 1, ..., 1)
                delta = delta * self.row_gate.view(-1, *([1] * (delta.dim() - 1))).to(delta.dtype)
            y = y + delta
        return y


def lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]


def adapter_names(model: nn.Module) -> list[str]:
    names: dict[str, None] = {}
    for _, layer in lora_layers(model):
        names.update(dict.fromkeys(layer.adapters))
    return list(names)


def add_lora(model: nn.Module, targets: dict[str, Sequence[tuple[int, int]]], r: int = 8,
             alpha: float = 16.0, dropout: float = 0.0, name: str = "default") -> nn.Module:
    """Add adapter `name` on the linears `targets` names ({module: [(start row, rows), ...]}).

    It becomes the active adapter; everything else is left as it was (freezing the
    base is the trainer's choice, see `training.finetune`). Returns `model`."""
    if not isinstance(r, int) or r <= 0:
        raise LoRAError(f"LoRA rank r={r!r} must be a positive integer")
    if alpha <= 0:
        raise LoRAError(f"lora_alpha={alpha!r} must be positive")
    if not 0.0 <= dropout < 1.0:
        raise LoRAError(f"lora_dropout={dropout!r} must be in [0, 1)")
    if not targets:
        raise LoRAError("no LoRA targets: name at least one linear layer")
    if name in adapter_names(model):
        raise LoRAError(f"the model already has an adapter named {name!r}; pick another name")
    _first_lora.clear()  # its LoRA layers change (and those of any module holding it)
    for module_name, parts in targets.items():
        layer = model.get_submodule(module_name)
        if not isinstance(layer, LoRALinear):
            layer = LoRALinear(layer).train(layer.training)  # keep the model's train / eval mode
            model.set_submodule(module_name, layer)
        device = next(iter(layer.base.state_dict().values())).device
        adapter = LoRAAdapter(layer.in_features, layer.out_features, parts, r, alpha, dropout)
        layer.adapters[name] = adapter.to(device=device).train(layer.training)
    set_adapter(model, name)
    return model


def set_adapter(model: nn.Module, name: str | None) -> None:
    """Make adapter `name` the one in use in every LoRA layer (None: the base model alone)."""
    if name is not None and name not in adapter_names(model):
        raise LoRAError(f"no adapter named {name!r}; the model has {adapter_names(model)}")
    for _, layer in lora_layers(model):
        layer.active = name


_first_lora: weakref.WeakKeyDictionary[nn.Module, LoRALinear | None] = weakref.WeakKeyDictionary()


def active_adapter(model: nn.Module) -> str | None:
    """The adapter in use (None: the base model). Asked at every decode step, so the model's first
    LoRA layer is looked up once (a walk over every module) and kept until `add_lora` or
    `merge_lora` changes the model's layers."""
    if model not in _first_lora:
        _first_lora[model] = next((m for m in model.modules() if isinstance(m, LoRALinear)), None)
    layer = _first_lora[model]
    return layer.active if layer is not None else None


@contextlib.contextmanager
def using_adapter(model: nn.Module, name: str | None) -> Iterator[nn.Module]:
    """`with using_adapter(model, "sql"): model.generate(...)`: switch for one call, then switch back."""
    previous = active_adapter(model)
    set_adapter(model, name)
    try:
        yield model
    finally:
        set_adapter(model, previous)


@contextlib.contextmanager
def adapter_for_rows(model: nn.Module, name: str, rows: torch.Tensor) -> Iterator[nn.Module]:
    """Adapter `name` for the batch rows where `rows` (B,) is True and the base model for the others,
    in one forward: `with adapter_for_rows(model, "tools", wants_tools): model(ids)`."""
    previous = active_adapter(model)
    set_adapter(model, name)
    gate = rows.float()
    layers = [layer for _, layer in lora_layers(model)]
    for layer in layers:
        layer.row_gate = gate
    try:
        yield model
    finally:
        for layer in layers:
            layer.row_gate = None
        set_adapter(model, previous)


def delete_adapter(model: nn.Module, name: str) -> None:
    if name not in adapter_names(model):
        raise LoRAError(f"no adapter named {name!r}; the model has {adapter_names(model)}")
    for _, layer in lora_layers(model):
        if name in layer.adapters:
            del layer.adapters[name]
            if layer.active == name:
                layer.active = None


@torch.no_grad()
def merge_lora(model: nn.Module, name: str | None = None) -> nn.Module:
    """Fold adapter `name` (default: the active one) into the base weights and remove every
    LoRA layer, leaving the base modules: the plain model the merged weights describe."""
    name = name if name is not None else active_adapter(model)
    if name is None:
        raise LoRAError("no adapter to merge: the model has none active; name one")
    if name not in adapter_names(model):
        raise LoRAError(f"no adapter named {name!r}; the model has {adapter_names(model)}")
    _first_lora.clear()
    for module_name, layer in lora_layers(model):
        base = layer.base
        if name in layer.adapters:
            if not isinstance(getattr(base, "weight", None), nn.Parameter) or not base.weight.is_floating_point():
                raise LoRAError(f"cannot merge into {module_name!r}: its weight is quantized "
                                f"({type(base).__name__}); merge into the float model, then quantize")
            base.weight += layer.adapters[name].delta_weight().to(base.weight.dtype)
        model.set_submodule(module_name, base)
    return model

"""Layer 3: LoRA adapters in PEFT's format (adapter_config.json + adapter_model.safetensors).

PEFT names an adapter's tensors after the Hugging Face module they sit on
(`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`), while our
model fuses q/k/v and gate/up. The per-family name rules of `hf_weights` already
say which HF module is which row range of which of our linears, so the same
rules give each LoRA part its PEFT name, both ways: an adapter trained here
loads with `peft.PeftModel.from_pretrained` on the exported transformers model,
and one trained with PEFT loads here. `resolve_targets` turns target names (HF
leaf names such as `q_proj`, our names such as `qkv`, or `all-linear`) into the
row ranges `llmos.adapters.add_lora` wants.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from llmos.adapters import LoRAError, LoRALinear, adapter_names, add_lora, lora_layers, set_adapter
from llmos.atomic_files import fsync_dir
from llmos.checkpoint.hf_config import choose_family
from llmos.checkpoint.hf_weights import PREFIX, _fill, _rules, _split_sizes

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
KEY_PREFIX = "base_model.model."
ALL_LINEAR = "all-linear"
HEAD_MODULES = ("lm_head", "classifier")
LABEL_NAMES_KEY = "llmos.label_names"  # a classifier's label names, in the safetensors metadata


@dataclass(frozen=True)
class LinearPart:
    """A row range of one of our linears and the HF module it is in transformers."""

    module: str  # ours: transformer.blocks.0.attn.qkv
    hf: str  # the HF task model's: model.layers.0.self_attn.q_proj
    suffix: str  # the HF name after the layer index: self_attn.q_proj
    start: int
    rows: int


def _linear_modules(model: nn.Module) -> list[str]:
    """Qualified names of the model's linears (a LoRA layer counts as the linear it wraps)."""
    names, inside = [], ()
    for name, module in model.named_modules():
        if inside and name.startswith(inside):
            continue
        if isinstance(module, LoRALinear):
            names.append(name)
            inside = (name + ".",)
        elif isinstance(getattr(module, "in_features", None), int) and isinstance(
                getattr(module, "out_features", None), int):  # nn.Linear, a kernel or a quantized linear
            names.append(name)
    return names


def linear_parts(model: nn.Module) -> list[LinearPart]:
    """Every LoRA-able part of the model's linears, with its Hugging Face module name."""
    config = model.config
    family = choose_family(config)
    trunk, heads = _rules(family)
    compiled = [(r, r.regex("ours"), False) for r in trunk] + [(r, r.regex("ours"), True) for r in heads]
    parts = []
    for module in _linear_modules(model):
        for rule, regex, is_head in compiled:
            match = regex.match(module + ".weight")
            if match is None:
                continue
            hf = _fill(rule.hf, match).removesuffix(".weight")
            full = hf if is_head else PREFIX.get(family, "model.") + hf
            suffix = rule.hf.split("{i}.", 1)[-1].removesuffix(".{p}").removesuffix(".weight")
            out = model.get_submodule(module).out_features
            if rule.parts:
                sizes = _split_sizes(config, rule.parts)
                start, rows = sum(sizes[:rule.part]), sizes[rule.part]
            else:
                start, rows = 0, out
            parts.append(LinearPart(module, full, suffix, start, rows))
    return parts


def resolve_targets(model: nn.Module, targets: list[str] | str) -> tuple[dict[str, list[tuple[int, int]]], list[str]]:
    """Target names -> ({our module: [(start, rows)]}, the PEFT `target_modules` list).

    A name matches an HF module (or one of ours) when it equals it or ends it after a dot,
    as in PEFT; `all-linear` is every linear in the blocks (not the output head)."""
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    parts = [p for p in linear_parts(model) if p.module.split(".")[-1] not in HEAD_MODULES
             and p.module not in HEAD_MODULES]
    if not targets:
        raise LoRAError("no LoRA target modules given; name some, e.g. q_proj,v_proj or all-linear")

    def matches(name: str, target: str) -> bool:
        return name == target or name.endswith("." + target)

    chosen = [p for p in parts if ALL_LINEAR in targets
              or any(matches(p.hf, t) or matches(p.module, t) for t in targets)]
    unmatched = [t for t in targets if t != ALL_LINEAR
                 and not any(matches(p.hf, t) or matches(p.module, t) for p in parts)]
    if unmatched:
        leaves = sorted({p.suffix.split(".")[-1] for p in parts} | {p.suffix for p in parts}
                        | {p.module.split(".")[-1] for p in parts})
        raise LoRAError(f"LoRA target(s) {unmatched} match no module of this model; "
                        f"the linear modules are {leaves} (or {ALL_LINEAR!r})")
    result: dict[str, list[tuple[int, int]]] = {}
    for p in chosen:
        result.setdefault(p.module, []).append((p.start, p.rows))
    return result, peft_target_names(parts, chosen)


def peft_target_names(parts: list[LinearPart], chosen: list[LinearPart]) -> list[str]:
    """PEFT's target_modules for `chosen`: the short names (`self_attn.q_proj`) when they pick
    out exactly these modules in PEFT's suffix matching, else the full module names."""
    suffixes = sorted({p.suffix for p in chosen})
    picked = {p.hf for p in chosen}
    clash = any(p.hf not in picked and any(p.hf == s or p.hf.endswith("." + s) for s in suffixes) for p in parts)
    return sorted(picked) if clash else suffixes


# ---- saving ------------------------------------------------------------------


def _adapter_tensors(model: nn.Module, name: str, heads: bool) -> dict[str, torch.Tensor]:
    """PEFT key -> the parameter (or the slice of it) that key stores, for adapter `name`."""
    by_part = {(p.module, p.start): p for p in linear_parts(model)}
    tensors = {}
    for module, layer in lora_layers(model):
        if name not in layer.adapters:
            continue
        adapter = layer.adapters[name]
        for (start, _), a, b in zip(adapter.parts, adapter.A.split(adapter.r), adapter.B, strict=True):
            hf = by_part[(module, start)].hf
            tensors[f"{KEY_PREFIX}{hf}.lora_A.weight"] = a
            tensors[f"{KEY_PREFIX}{hf}.lora_B.weight"] = b
    if heads:
        for head_name, hf in head_names(model).items():
            for pname, p in model.get_submodule(head_name).named_parameters():
                tensors[f"{KEY_PREFIX}{hf}.{pname}"] = p
    return tensors


def adapter_state(model: nn.Module, name: str, train_heads: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of adapter `name` under PEFT's key names (+ the heads, when trained), fp32 on CPU."""
    return {k: v.detach().float().cpu().contiguous() for k, v in _adapter_tensors(model, name, train_heads).items()}


@torch.no_grad()
def restore_adapter(model: nn.Module, directory: str | Path, name: str | None = None) -> None:
    """Copy the weights saved in `directory` back into the model's existing adapter `name`
    (resuming a LoRA run: same targets, same shapes)."""
    name = name or _active(model)
    saved = load_file(str(Path(directory) / ADAPTER_WEIGHTS))
    current = _adapter_tensors(model, name, heads=any(k.endswith(f"{h}.weight") for k in saved
                                                         for h in head_names(model).values()))
    if set(saved) != set(current):
        raise LoRAError(f"{directory}: the saved adapter's tensors differ from this run's adapter "
                        f"(missing {sorted(set(current) - set(saved))[:4]}, extra {sorted(set(saved) - set(current))[:4]})")
    for key, target in current.items():
        target.copy_(saved[key])


def head_names(model: nn.Module) -> dict[str, str]:
    """Our classification head -> its HF module name (PEFT's modules_to_save)."""
    if not hasattr(model, "classifier"):
        return {}
    family = choose_family(model.config)
    return {"classifier": "classifier" if family == "bert" else "score"}


def save_adapter(model: nn.Module, directory: str | Path, name: str | None = None,
                 base_model: str | None = None, train_heads: bool | None = None) -> Path:
    """Write adapter `name` (default: the active one) as a PEFT adapter directory."""
    name = name or _active(model)
    layers = [layer for _, layer in lora_layers(model) if name in layer.adapters]
    if not layers:
        raise LoRAError(f"the model has no adapter named {name!r} (it has {adapter_names(model)})")
    first = layers[0].adapters[name]
    is_classifier = bool(head_names(model))
    if train_heads is None:
        train_heads = is_classifier
    chosen_modules = {m for m, layer in lora_layers(model) if name in layer.adapters}
    parts = linear_parts(model)
    chosen = [p for p in parts if p.module in chosen_modules
              and any(p.start == s for s, _ in model.get_submodule(p.module).adapters[name].parts)]
    config = {
        "peft_type": "LORA",
        "task_type": "SEQ_CLS" if is_classifier else "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": first.r,
        "lora_alpha": first.alpha,
        "lora_dropout": first.dropout_p,
        "target_modules": peft_target_names(
            [p for p in parts if p.module.split(".")[-1] not in HEAD_MODULES], chosen),
        "bias": "none",
        "fan_in_fan_out": choose_family(model.config) == "gpt2",
        "modules_to_save": list(head_names(model).values()) if train_heads and is_classifier else None,
        "init_lora_weights": True,
        "inference_mode": True,
        "use_rslora": False,
        "use_dora": False,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": None,
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt"}
    if is_classifier and model.config.label_names:
        metadata[LABEL_NAMES_KEY] = json.dumps(model.config.label_names)
    save_file(adapter_state(model, name, train_heads and is_classifier), str(directory / ADAPTER_WEIGHTS),
              metadata=metadata)
    (directory / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    fsync_dir(directory)
    return directory


def _active(model: nn.Module) -> str:
    from llmos.adapters import active_adapter

    name = active_adapter(model)
    if name is None:
        raise LoRAError("the model has no active adapter; pass the adapter's name")
    return name


# ---- loading -----------------------------------------------------------------


def read_adapter_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / ADAPTER_CONFIG
    if not path.is_file() or not (directory / ADAPTER_WEIGHTS).is_file():
        raise LoRAError(f"{str(directory)!r} is not a LoRA adapter directory "
                        f"(expected {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})")
    config = json.loads(path.read_text())
    if config.get("peft_type") != "LORA":
        raise LoRAError(f"{path}: peft_type={config.get('peft_type')!r} is not supported; only LORA adapters load")
    for flag in ("use_dora", "use_rslora"):
        if config.get(flag):
            raise LoRAError(f"{path}: {flag}=true is not supported (plain LoRA only)")
    return config


def is_adapter_dir(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_head_shape(directory: str | Path) -> tuple[int, list[str]]:
    """(number of labels, label names) of a classification adapter's saved head; (0, []) if none."""
    from safetensors import safe_open

    with safe_open(str(Path(directory) / ADAPTER_WEIGHTS), "pt") as f:
        metadata = f.metadata() or {}
        rows = [f.get_slice(k).get_shape()[0] for k in f.keys()
                if k.removeprefix(KEY_PREFIX).replace(".modules_to_save.default", "") in ("score.weight",
                                                                                          "classifier.weight")]
    names = json.loads(metadata[LABEL_NAMES_KEY]) if LABEL_NAMES_KEY in metadata else []
    return (rows[0] if rows else 0), names


def load_adapter(model: nn.Module, directory: str | Path, name: str = "default",
                 base_label: str | None = None) -> nn.Module:
    """Add the PEFT adapter in `directory` to `model` as adapter `name` and make it active."""
    directory = Path(directory)
    config = read_adapter_config(directory)
    tensors = load_file(str(directory / ADAPTER_WEIGHTS))
    made_for = config.get("base_model_name_or_path")
    mismatch = (f"the adapter {str(directory)!r} was made for base model {made_for!r}, "
                f"not for {base_label or 'this model'!r}")
    by_hf = {p.hf: p for p in linear_parts(model)}
    pattern = re.compile(r"^(?:base_model\.model\.)?(?P<hf>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")
    found: dict[str, dict[str, torch.Tensor]] = {}
    head_tensors: dict[str, torch.Tensor] = {}
    heads = {hf: ours for ours, hf in head_names(model).items()}
    for key, tensor in tensors.items():
        match = pattern.match(key)
        if match is None:
            stripped = key.removeprefix(KEY_PREFIX).replace(".modules_to_save.default", "")
            head, _, pname = stripped.rpartition(".")
            if head in heads:
                head_tensors[f"{heads[head]}.{pname}"] = tensor
                continue
            raise LoRAError(f"{directory / ADAPTER_WEIGHTS}: tensor {key!r} is not a LoRA weight; {mismatch}")
        if match["hf"] not in by_hf:
            raise LoRAError(f"{directory / ADAPTER_WEIGHTS}: module {match['hf']!r} is not in this model; "
                            f"{mismatch}")
        found.setdefault(match["hf"], {})[match["ab"]] = tensor
    if not found:
        raise LoRAError(f"{directory / ADAPTER_WEIGHTS} holds no LoRA weights")
    r = int(config.get("r", 8))
    targets: dict[str, list[tuple[int, int]]] = {}
    for hf, pair in found.items():
        part = by_hf[hf]
        a, b = pair.get("A"), pair.get("B")
        if a is None or b is None:
            raise LoRAError(f"{directory / ADAPTER_WEIGHTS}: {hf!r} has only lora_{'A' if b is None else 'B'}")
        in_features = model.get_submodule(part.module).in_features
        if tuple(a.shape) != (r, in_features) or tuple(b.shape) != (part.rows, r):
            raise LoRAError(f"{directory / ADAPTER_WEIGHTS}: {hf!r} has lora_A {tuple(a.shape)} and lora_B "
                            f"{tuple(b.shape)}, this model needs ({r}, {in_features}) and ({part.rows}, {r}); "
                            f"{mismatch}")
        targets.setdefault(part.module, []).append((part.start, part.rows))
    add_lora(model, targets, r=r, alpha=float(config.get("lora_alpha", 8)),
             dropout=float(config.get("lora_dropout", 0.0)), name=name)
    with torch.no_grad():
        for hf, pair in found.items():
            part = by_hf[hf]
            adapter = model.get_submodule(part.module).adapters[name]
            index = adapter.parts.index((part.start, part.rows))
            adapter.A[index * r:(index + 1) * r].copy_(pair["A"])
            adapter.B[index].copy_(pair["B"])
        params = dict(model.named_parameters())
        for pname, tensor in head_tensors.items():
            if pname not in params or params[pname].shape != tensor.shape:
                raise LoRAError(f"{directory / ADAPTER_WEIGHTS}: head tensor {pname!r} "
                                f"{tuple(tensor.shape)} does not fit this model; {mismatch}")
            params[pname].copy_(tensor)
    set_adapter(model, name)
    return model

"""Layer 2b: adapters put into a built model by swapping its linears (LoRA); the model never imports this."""

from llmos.adapters.lora import (
    LoRAAdapter,
    LoRAError,
    LoRALinear,
    active_adapter,
    adapter_for_rows,
    adapter_names,
    add_lora,
    delete_adapter,
    lora_layers,
    merge_lora,
    set_adapter,
    using_adapter,
)

__all__ = [
    "LoRAAdapter",
    "LoRAError",
    "LoRALinear",
    "active_adapter",
    "adapter_for_rows",
    "adapter_names",
    "add_lora",
    "delete_adapter",
    "lora_layers",
    "merge_lora",
    "set_adapter",
    "using_adapter",
]

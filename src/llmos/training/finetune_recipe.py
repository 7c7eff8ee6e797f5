"""Layer 6: `FinetuneConfig`, a fine-tuning run: the shared loop knobs plus model, data and method.

Same YAML recipe form as pretraining (`llmos finetune --config recipe.yaml`,
flags generated from the fields override it); the defaults are a fine-tuning
run's (smaller learning rate, short warmup, no weight decay).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmos.training.recipe import RecipeError, RunConfig

METHODS = ("lora", "freeze", "full")
TASKS = ("auto", "chat", "completion", "classification")


@dataclass
class FinetuneConfig(RunConfig):
    """Every knob of a fine-tuning run (see RunConfig for the loop's)."""

    out_dir: str = "runs/finetune"
    context: int = 256
    max_steps: int = 200
    lr: float = 2e-4
    min_lr: float = 2e-5
    warmup_steps: int = 10
    weight_decay: float = 0.0
    beta2: float = 0.999
    eval_every: int = 50
    base_model: str = ""  # a checkpoint directory, Hugging Face directory, GGUF file or name (smollm2)
    data: str = ""  # chat / prompt-completion JSONL, or labelled text (TSV, CSV, JSONL) for classification
    val_data: str = ""  # a validation file of the same format ("" = hold out val_fraction of data)
    val_fraction: float = 0.1
    task: str = "auto"  # auto (from the data) | chat | completion | classification
    method: str = "lora"  # lora | freeze | full
    freeze_layers: int = 0  # freeze: the embeddings and this many lowest blocks
    train_top: int = 0  # freeze: train only the top N blocks and the head; lora: adapters on the top N only
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"  # comma-separated: HF names (q_proj,v_proj), ours (qkv) or all-linear
    labels: str = ""  # classification: comma-separated label names in id order ("" = from the data)
    packing: bool = False  # causal: concatenate examples into full rows of `context` tokens
    group_by_length: bool = False  # causal: batch examples of similar length together (less padding)

    def validate(self) -> None:
        super().validate()
        for name, valid in (("method", METHODS), ("task", TASKS)):
            value = getattr(self, name)
            if value not in valid:
                raise RecipeError(f"{name}={value!r} is not valid; expected one of {list(valid)}", param=name)
        if not 0.0 <= self.val_fraction < 1.0:
            raise RecipeError(f"val_fraction={self.val_fraction!r} must be in [0, 1)", param="val_fraction")
        if self.freeze_layers < 0 or self.train_top < 0:
            raise RecipeError(f"freeze_layers={self.freeze_layers} and train_top={self.train_top} must be >= 0",
                              param="freeze_layers" if self.freeze_layers < 0 else "train_top")
        if self.freeze_layers and self.train_top:
            raise RecipeError("set freeze_layers or train_top, not both (one is the other said the other way)",
                              param="train_top")
        if self.lora_r <= 0 or self.lora_alpha <= 0 or not 0.0 <= self.lora_dropout < 1.0:
            raise RecipeError(f"need lora_r > 0, lora_alpha > 0 and 0 <= lora_dropout < 1; got r={self.lora_r}, "
                              f"alpha={self.lora_alpha}, dropout={self.lora_dropout}",
                              param="lora_r" if self.lora_r <= 0 else "lora_alpha" if self.lora_alpha <= 0
                              else "lora_dropout")

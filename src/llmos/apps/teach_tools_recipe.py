"""Layer 8: `TeachToolsConfig`, a `llmos teach-tools` run: which tools, how much data, and the LoRA run.

It is a fine-tuning recipe (`FinetuneConfig`: the same LoRA, loop, checkpoint
and YAML fields, and the same generated flags) plus the fields that say what
to teach: the tools (`tools`: a JSON file of OpenAI tool definitions, or a
Python module whose typed functions become tools), example requests, whether
the synthetic catalogue of tools is mixed in, and the size and make-up of the
generated data. The run writes its own training data, so `data`, `val_data`
and `method` are not for it to take.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmos.training.finetune_recipe import FinetuneConfig
from llmos.training.recipe import RecipeError


@dataclass
class TeachToolsConfig(FinetuneConfig):
    """Every knob of a teach-tools run (see FinetuneConfig for the LoRA run's)."""

    out_dir: str = "runs/teach-tools"
    base_model: str = "smollm2"
    context: int = 1024
    max_steps: int = 100
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 5
    eval_every: int = 0
    dtype: str = "auto"  # bf16 autocast where it measures faster than float32 (native bf16: ~1.8x a step)
    group_by_length: bool = True  # conversations of similar length in a batch: less padding
    val_fraction: float = 0.0
    tools: str = ""  # a JSON file of tool definitions, or a Python module (file.py or dotted name); "" = none
    examples: str = ""  # JSONL: {"request", "tool" (a name, or null when none fits), "arguments"} per line
    catalogue: bool = True  # mix in the synthetic tools (llmos/data/tool_catalogue.yaml)
    conversations: int = 800  # training conversations to generate
    max_tools: int = 4  # tools listed in one conversation
    calls: float = 0.6  # share of requests that need a listed tool
    cannot: float = 0.5  # of the others: a request for a tool that is not listed (else a general request)
    contrast: float = 0.0  # share of those refusals also trained as a call, the tool added to the listing
    related_beside_calls: float = 0.0  # share of calls listed beside a related tool (get_forecast by get_weather)
    served: float = 0.0  # share of refusals also trained as a call of a general tool that serves them (search_web)
    held_out_phrasings: float = 0.25  # of each tool's request phrasings, never trained on
    held_out_tools: float = 0.0  # of your own tools (the catalogue holds out its own), never trained on
    chat_answers: bool = True  # general requests answered by the base model itself, to keep its chat
    test_items: int = 12  # test items per kind (call, none, answer) and split (new phrasings, new tools)
    evaluate: bool = True  # measure the model on the held-out items before and after

    def validate(self) -> None:
        super().validate()
        if self.data or self.val_data:
            raise RecipeError("teach-tools writes its own training data; give your requests as examples "
                              f"(--examples FILE), not data={self.data or self.val_data!r}", param="data")
        if self.method != "lora":
            raise RecipeError(f"teach-tools trains a LoRA adapter; method={self.method!r} is not for it",
                              param="method")
        if self.task not in ("auto", "chat"):
            raise RecipeError(f"teach-tools trains on chat data; task={self.task!r} is not for it", param="task")
        for name in ("calls", "cannot", "contrast", "related_beside_calls", "served"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise RecipeError(f"{name}={getattr(self, name)!r} must be in [0, 1]", param=name)
        for name in ("held_out_phrasings", "held_out_tools"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise RecipeError(f"{name}={getattr(self, name)!r} must be in [0, 1)", param=name)
        if self.conversations < 1 or self.max_tools < 1 or self.test_items < 0:
            raise RecipeError("conversations and max_tools must be at least 1, test_items at least 0",
                              param="conversations" if self.conversations < 1 else
                              "max_tools" if self.max_tools < 1 else "test_items")
        if not self.tools and not self.catalogue:
            raise RecipeError("nothing to teach: give --tools FILE or keep the catalogue (--catalogue)",
                              param="tools")

"""Layer 5: `load_model`, the one way every caller loads a model: model, tokenizer, stop ids, and a report.

    loaded = load_model("smollm2")                # or a GGUF file, a checkpoint or adapter directory,
    loaded.model, loaded.tokenizer, loaded.stop_ids  # "ollama:llama3.2:1b", "lmstudio:pub/repo"
    loaded.report.quantization, loaded.report.missing_keys

The name is resolved once (`model_names.resolve_model`: a store name, a path,
an embedded model, the models folder); the weights load through the Auto*
classes' `from_pretrained` (GGUF or checkpoint, quantization, adapters); the
tokenizer is the checkpoint's (a GGUF file's from its metadata; an adapter's
own, else its base model's); the stop ids are `replies.stop_token_ids`, the
one definition of what ends a reply. `report` says what was loaded, as types
rather than log lines: the file or directory read and how it was found, its
format, architecture and quantization as loaded, the adapters put on, and
the head tensors the checkpoint lacked (freshly initialised) or had unused.
A tool-use adapter (`tools_adapter=True`: the one shipped for an embedded
model, `smollm2`'s; or a PEFT directory) is put on inactive as adapter
"tools" (the CLI's serve, agent and run verbs ask for it by default; training
and conversion never get it): `loaded.generator()`, the server and the engine
decode requests that carry tools through it and every other request through
the base model, unchanged.
Callers decide by it (an evaluation refuses a classifier whose head is
untrained). `describe_source` answers "what is this?" without loading weights, and
`source_config` reads its ModelConfig the same way.

An architecture LLMOS does not implement is refused by the format readers in
one line naming the supported ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.adapters import active_adapter
from llmos.config import ModelConfig
from llmos.errors import LLMOSError
from llmos.generation.replies import model_eos_ids, stop_token_ids
from llmos.process_memory import give_back_freed_memory

TOOLS_ADAPTER = "tools"  # the name a tool-use adapter is held under
HEADS = ("causal-lm", "classifier", "masked-lm", "pretraining")
SAVED_HEADS = {"CausalLM": "causal-lm", "SequenceClassifier": "classifier", "MaskedLM": "masked-lm",
               "PreTrainingModel": "pretraining"}


@dataclass
class ModelSource:
    """What a name or path stands for, read without loading weights."""

    requested: str
    path: Path  # the GGUF file or checkpoint directory read (for an adapter: the adapter directory)
    format: str  # "gguf", "checkpoint" or "adapter"
    store: str | None  # how a name was found: "embedded", "models folder", "Ollama", "LM Studio"; None: a path
    head: str | None  # the head it holds (HEADS), when it says; a GGUF file holds a causal LM

    @property
    def is_gguf(self) -> bool:
        return self.format == "gguf"


@dataclass
class LoadReport:
    """What `load_model` loaded (see the module docstring)."""

    source: ModelSource
    architecture: str
    quantization: str  # as loaded: "none", "int8", "int4", "int8-group32", or "mixed" (a GGUF file's kernels)
    adapters: dict[str, Path] = field(default_factory=dict)
    missing_keys: list[str] = field(default_factory=list)  # freshly initialised: an untrained head
    unexpected_keys: list[str] = field(default_factory=list)  # in the checkpoint, unused by this head


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any  # an LLMOS Tokenizer (None when tokenizer=False)
    stop_ids: list[int]  # what ends a reply, the model's own EOS first
    report: LoadReport
    tools_adapter: str | None = None  # the adapter the model holds for requests with tools ("tools")

    def generator(self) -> Any:
        """A `LocalGenerator` over this model (a causal LM) in this process."""
        from llmos.generation.local import LocalGenerator

        return LocalGenerator(self.model, self.tokenizer, self.stop_ids, tools_adapter=self.tools_adapter)


def describe_source(name_or_path: str | Path, gguf_file: str | None = None) -> ModelSource:
    """What `name_or_path` is (format, store, saved head), without loading weights."""
    from llmos.checkpoint.peft_format import adapter_head_shape, is_adapter_dir
    from llmos.model_names import resolve_model

    if gguf_file is None and is_adapter_dir(name_or_path):
        head = "classifier" if adapter_head_shape(name_or_path)[0] else None
        return ModelSource(str(name_or_path), Path(name_or_path), "adapter", None, head)
    resolved = resolve_model(name_or_path, gguf_file)
    if resolved.is_gguf:
        return ModelSource(str(name_or_path), resolved.path, "gguf", resolved.store, "causal-lm")
    return ModelSource(str(name_or_path), resolved.path, "checkpoint", resolved.store, _saved_head(resolved.path))


def source_config(name_or_path: str | Path) -> ModelConfig:
    """The ModelConfig of what `name_or_path` names, read without its weights: a GGUF file's
    metadata, a checkpoint's config.json; an adapter directory's base model's."""
    source = describe_source(name_or_path)
    if source.format == "adapter":
        return source_config(_adapter_base(source))
    if source.is_gguf:
        from llmos.checkpoint.gguf_config import config_from_gguf
        from llmos.checkpoint.gguf_file import open_gguf

        return config_from_gguf(open_gguf(source.path))
    from llmos.checkpoint import read_config

    return read_config(source.path)[0]


def _adapter_base(source: ModelSource) -> str:
    from llmos.checkpoint.peft_format import read_adapter_config

    base = read_adapter_config(source.path).get("base_model_name_or_path")
    if not base:
        raise LLMOSError(f"the adapter {str(source.path)!r} does not name its base model")
    return base


def _saved_head(path: Path) -> str | None:
    from llmos.checkpoint import read_config

    try:
        return SAVED_HEADS.get(read_config(path)[1] or "")
    except LLMOSError:
        return None  # not a readable checkpoint: loading it says why


def load_model(name_or_path: str | Path, head: str = "causal-lm", *, quantize: str | None = None,
               dtype: Any = None, adapter: str | Path | dict[str, str | Path] | None = None,
               kernels: bool | None = None, gguf_file: str | None = None, tokenizer: bool = True,
               tools_adapter: bool | str | Path = False, **config_overrides: Any) -> LoadedModel:
    """Load `name_or_path` (see the module docstring) into `head` (one of HEADS).

    quantize, dtype, adapter, kernels, gguf_file and config overrides are `from_pretrained`'s;
    tokenizer=False skips the tokenizer (and the stop ids are the model's own EOS ids);
    tools_adapter: True for the one shipped with an embedded model (if any), a PEFT directory, or
    False (the default) for none."""
    from llmos.auto import (
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForPreTraining,
        AutoModelForSequenceClassification,
    )
    from llmos.checkpoint.quantization import quantization_entry

    auto = {"causal-lm": AutoModelForCausalLM, "classifier": AutoModelForSequenceClassification,
            "masked-lm": AutoModelForMaskedLM, "pretraining": AutoModelForPreTraining}.get(head)
    if auto is None:
        raise LLMOSError(f"head={head!r} is not known; valid: {', '.join(HEADS)}", param="head")
    source = describe_source(name_or_path, gguf_file)
    target = source.path if source.format != "adapter" else name_or_path
    model, info = auto.from_pretrained(target, dtype=dtype, quantize=quantize, gguf_file=None, kernels=kernels,
                                       adapter=adapter, output_loading_info=True, **config_overrides)
    model.eval()
    adapters = _adapters(source, adapter)
    loaded_tokenizer = _tokenizer(source) if tokenizer else None
    eos = model_eos_ids(model) if hasattr(model, "lm_head") else list(model.config.eos_token_ids or [])
    stops = stop_token_ids(loaded_tokenizer, eos) if loaded_tokenizer is not None else eos
    entry = quantization_entry(model)
    tools = _tools_adapter(source, head, adapter, tools_adapter)
    if tools is not None:
        from llmos.adapters import set_adapter
        from llmos.checkpoint.peft_format import load_adapter

        active = active_adapter(model)
        load_adapter(model, tools, name=TOOLS_ADAPTER, base_label=str(name_or_path))
        set_adapter(model, active)  # used per request, by requests with tools
        adapters[TOOLS_ADAPTER] = tools
    report = LoadReport(source, _architecture(source, model), entry["method"] if entry else "none", adapters,
                        list(info["missing_keys"]), list(info["unexpected_keys"]))
    give_back_freed_memory()  # the file's transient buffers
    return LoadedModel(model, loaded_tokenizer, stops, report, TOOLS_ADAPTER if tools is not None else None)


def _tools_adapter(source: ModelSource, head: str, adapter: Any, wanted: bool | str | Path) -> Path | None:
    if wanted is False or head != "causal-lm":
        return None
    if wanted is not True:
        return Path(wanted)
    if adapter is not None or source.format == "adapter" or not source.is_gguf:
        return None  # a model with an adapter of its own is used as it is
    from llmos.model_names import shipped_tools_adapter

    return shipped_tools_adapter(source.path)


def _adapters(source: ModelSource, adapter: Any) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if source.format == "adapter":
        found["default"] = source.path
    if isinstance(adapter, dict):
        found.update({name: Path(d) for name, d in adapter.items()})
    elif adapter is not None:
        found["extra" if found else "default"] = Path(adapter)
    return found


def _architecture(source: ModelSource, model: Any) -> str:
    if source.is_gguf:  # the loader read the file through open_gguf, which keeps it: no second read
        from llmos.checkpoint.gguf_file import open_gguf

        return open_gguf(source.path).architecture
    return str(getattr(model.config, "family", None) or "llmos")


def _tokenizer(source: ModelSource) -> Any:
    """The checkpoint's tokenizer; an adapter without one has its base model's."""
    from llmos.auto import AutoTokenizer

    if source.format == "adapter" and not (source.path / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(_adapter_base(source))  # it holds none: its base model's
    elif source.format == "checkpoint" and not (source.path / "tokenizer.json").is_file():
        raise LLMOSError(f"{str(source.path)!r} has no tokenizer.json; load it with tokenizer=False, or save the "
                         "model with its tokenizer: model.save_pretrained(dir, tokenizer=tokenizer)", param="model")
    else:
        tokenizer = AutoTokenizer.from_pretrained(source.path)
    return tokenizer

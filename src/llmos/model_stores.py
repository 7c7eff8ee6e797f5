"""Layer 4: the model stores other tools keep on this machine (Ollama, LM Studio), read in place.

Ollama (`OLLAMA_MODELS`, default ~/.ollama/models) keeps a manifest per model
at `manifests/<registry>/<namespace>/<model>/<tag>`: JSON whose layer of
mediaType `application/vnd.ollama.image.model` names, by digest, the GGUF file
in `blobs/sha256-<digest>`. A model is `ollama:NAME:TAG` as Ollama names it
(`ollama:llama3.2:1b`; the tag defaults to `latest`; another namespace or
registry comes first, `ollama:user/model:tag`). LM Studio keeps GGUF files at
`~/.lmstudio/models/<publisher>/<repo>/<file>.gguf` (older versions:
~/.cache/lm-studio/models); a model is `lmstudio:PUBLISHER/REPO/FILE.gguf`, or
`lmstudio:PUBLISHER/REPO` when the repo holds one model file (vision
projectors, `mmproj-*`, are not models). Both are GGUF files that load where
they are: nothing is copied.

A name is looked up among the entries a store lists, never joined into a
path, so no name reaches a file outside the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from llmos.errors import LLMOSError

OLLAMA, LM_STUDIO = "Ollama", "LM Studio"
PREFIXES = {"ollama:": OLLAMA, "lmstudio:": LM_STUDIO}
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_REGISTRY, OLLAMA_LIBRARY = "registry.ollama.ai", "library"


class StoreError(LLMOSError):
    """A store name that names nothing in its store; the message lists what the store has."""


@dataclass(frozen=True)
class StoreEntry:
    name: str  # what loads it: "ollama:llama3.2:1b", "lmstudio:publisher/repo/file.gguf"
    store: str  # OLLAMA or LM_STUDIO
    path: Path  # the GGUF file, used in place

    @property
    def label(self) -> str:
        """The short name a server answers to: Ollama's own name, or the file's stem."""
        return self.name.removeprefix("ollama:") if self.store == OLLAMA else self.path.stem


def is_store_name(name: str) -> bool:
    return any(str(name).startswith(prefix) for prefix in PREFIXES)


def ollama_dir() -> Path:
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models")


def lmstudio_dirs() -> list[Path]:
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def ollama_models() -> list[StoreEntry]:
    """Every model of Ollama's store whose manifest names a GGUF blob that is there."""
    root = ollama_dir()
    manifests = root / "manifests"
    entries = []
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()) if manifests.is_dir() else []:
        parts = manifest.relative_to(manifests).parts
        if len(parts) < 4:
            continue
        registry, *namespace, model, tag = parts
        if registry == OLLAMA_REGISTRY and namespace == [OLLAMA_LIBRARY]:
            name = f"{model}:{tag}"
        elif registry == OLLAMA_REGISTRY:
            name = f"{'/'.join(namespace)}/{model}:{tag}"
        else:
            name = f"{registry}/{'/'.join(namespace)}/{model}:{tag}"
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers") or []
            digest = next(layer["digest"] for layer in layers if layer.get("mediaType") == OLLAMA_MODEL_LAYER)
        except (OSError, ValueError, AttributeError, KeyError, StopIteration, TypeError):
            continue  # not a model manifest (or a damaged one): nothing to load
        blob = root / "blobs" / str(digest).replace(":", "-")
        if "/" not in str(digest) and blob.is_file():
            entries.append(StoreEntry(f"ollama:{name}", OLLAMA, blob))
    return entries


def lmstudio_models() -> list[StoreEntry]:
    """Every GGUF model file under LM Studio's models folders (`<publisher>/<repo>/<file>.gguf`)."""
    entries = []
    for root in lmstudio_dirs():
        for path in sorted(root.glob("*/*/*.gguf")) if root.is_dir() else []:
            if path.is_file() and not path.name.lower().startswith("mmproj"):
                entries.append(StoreEntry(f"lmstudio:{path.parent.parent.name}/{path.parent.name}/{path.name}",
                                          LM_STUDIO, path))
    return entries


def store_models() -> list[StoreEntry]:
    return [*ollama_models(), *lmstudio_models()]


def find_store_model(name: str) -> StoreEntry:
    """The entry `name` ("ollama:...", "lmstudio:...") stands for; StoreError lists the store's names."""
    if name.startswith("ollama:"):
        wanted = name if ":" in name.removeprefix("ollama:") else f"{name}:latest"
        entries, where = ollama_models(), f"Ollama's store {str(ollama_dir())!r} (OLLAMA_MODELS)"
        found = [e for e in entries if e.name == wanted]
    elif name.startswith("lmstudio:"):
        entries = lmstudio_models()
        where = "LM Studio's models folder " + " or ".join(repr(str(d)) for d in lmstudio_dirs())
        found = [e for e in entries if e.name == name]
        if not found:  # publisher/repo: the repo's one model file
            in_repo = [e for e in entries if e.name.rsplit("/", 1)[0] == name.rstrip("/")]
            if len(in_repo) > 1:
                raise StoreError(f"{name!r} holds {len(in_repo)} model files; name one: "
                                 + ", ".join(e.name for e in in_repo), param="model")
            found = in_repo
    else:
        raise StoreError(f"{name!r} is not a store name; store names begin with {' or '.join(PREFIXES)}",
                         param="model")
    if not found:
        listed = ", ".join(e.name for e in entries[:12]) + (", ..." if len(entries) > 12 else "")
        raise StoreError(f"no model {name!r} in {where}; it has: {listed or '(none)'}", param="model")
    return found[0]

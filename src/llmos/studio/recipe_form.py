"""Layer 8b: the new-run form, generated from the recipe dataclasses, and its validation.

One source of truth, as for the CLI's flags: each field of `TrainConfig` (pretrain)
or `FinetuneConfig` (finetune) is a form field with its type, default, choices (the
recipe modules' constants, the model presets) and help (the field's inline comment in
the dataclass source, read with `tokenize`). Validation goes through the same
`from_dict` the CLI uses, so a bad value gets the CLI's `RecipeError` text, with the
field it names; paths must lie inside the studio's data folders and exist.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import tokenize
from functools import cache
from pathlib import Path
from typing import Any

from llmos.config import PRESETS, ConfigError, ModelConfig
from llmos.studio.models import existing_path, resolve_model
from llmos.studio.paths import StudioError, quoted
from llmos.studio.settings import StudioSettings
from llmos.training.finetune_recipe import METHODS, TASKS, FinetuneConfig
from llmos.training.recipe import DTYPES, OBJECTIVES, RecipeError, RunConfig, TrainConfig

RECIPES: dict[str, type[RunConfig]] = {"pretrain": TrainConfig, "finetune": FinetuneConfig}
STUDIO_SET = ("out_dir", "resume", "progress", "distributed")  # the studio decides these, not the form
CHOICES: dict[str, tuple[str, ...]] = {"objective": OBJECTIVES, "dtype": DTYPES, "method": METHODS, "task": TASKS,
                                       "model": tuple(sorted(PRESETS))}
MAIN_FIELDS = {
    "pretrain": ("data_dir", "model", "objective", "max_steps", "batch_size", "context", "lr"),
    "finetune": ("base_model", "data", "val_data", "task", "method", "max_steps", "batch_size", "context", "lr"),
}
DATA_PATHS = {"pretrain": ("data_dir",), "finetune": ("data", "val_data")}
_TYPES = ("int", "float", "str", "bool")


def form_fields(verb: str) -> list[dict[str, Any]]:
    cls, helps = RECIPES[verb], field_comments(RECIPES[verb])
    defaults = cls()
    fields = []
    for f in dataclasses.fields(cls):
        if f.name in STUDIO_SET:
            continue
        kind = str(f.type)
        fields.append({"name": f.name, "type": kind if kind in _TYPES else "dict",
                       "default": getattr(defaults, f.name), "choices": list(CHOICES[f.name]) if f.name in CHOICES
                       else None, "help": helps.get(f.name, ""),
                       "group": "main" if f.name in MAIN_FIELDS[verb] else "advanced"})
    main = {name: i for i, name in enumerate(MAIN_FIELDS[verb])}
    return sorted(fields, key=lambda field: main.get(field["name"], len(main)))


@cache
def field_comments(cls: type) -> dict[str, str]:
    """{field: its inline comment} over the class and its bases (a subclass's comment wins)."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            comments.update(_inline_comments(inspect.getsource(klass)))
    return comments


def _inline_comments(source: str) -> dict[str, str]:
    found, first_name = {}, {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        row = token.start[0]
        if token.type == tokenize.NAME and row not in first_name:
            first_name[row] = token.string
        elif token.type == tokenize.COMMENT and row in first_name:
            found[first_name[row]] = token.string.lstrip("#").strip()
    return found


def build_config(verb: str, fields: Any, settings: StudioSettings, run_dir: Path) -> RunConfig:
    """The recipe of a new run from the form's values, or StudioError naming the field."""
    if verb not in RECIPES:
        raise StudioError(f"verb {verb!r} is not a training run; expected one of {list(RECIPES)}", field="verb")
    if not isinstance(fields, dict):
        raise StudioError("fields must be an object of recipe fields", field="fields")
    cls = RECIPES[verb]
    for name in fields:
        if name in STUDIO_SET:
            raise StudioError(f"{name} is set by the studio, not the form", field=name)
    values = {name: _typed(cls, name, value) for name, value in fields.items()}
    try:
        config = cls.from_dict({**values, "out_dir": str(run_dir), "progress": True})
    except RecipeError as exc:
        raise StudioError(str(exc), field=exc.param) from exc
    changes: dict[str, Any] = {}
    for name in DATA_PATHS[verb]:
        value = getattr(config, name)
        if value or name != "val_data":
            changes[name] = str(existing_path(value, settings.data_dirs, name))
    if verb == "pretrain":
        try:
            ModelConfig.from_preset(config.model)
        except ConfigError as exc:
            raise StudioError(str(exc), field="model") from exc
    else:
        if not config.base_model.strip():
            raise StudioError("base_model is empty; give a model name, a run checkpoint or a path", field="base_model")
        changes["base_model"] = str(resolve_model(settings, config.base_model, field="base_model"))
    return dataclasses.replace(config, **changes)


def _typed(cls: type, name: str, value: Any) -> Any:
    """A form value as the field's type (a form may send numbers as text), as the CLI's flags would."""
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    kind = types.get(name)
    if kind == "bool" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if kind == "bool" and not isinstance(value, bool):
        raise StudioError(f"{name}={quoted(value)} must be true or false", field=name)
    if kind in ("int", "float") and not isinstance(value, bool):
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if kind == "int" and isinstance(number, float) and number.is_integer():
            return int(number)
        if kind == "float" and isinstance(number, (int, float)):
            return float(number)
        if kind == "int" and isinstance(number, int):
            return number
    if kind in ("int", "float"):
        raise StudioError(f"{name}={quoted(value)} is not a valid {'integer' if kind == 'int' else 'number'}", field=name)
    if kind == "str" and not isinstance(value, str):
        return json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return value

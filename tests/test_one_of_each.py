"""One of each (style.md): a constant, an error type, an atomic-write helper is defined in one place
and imported everywhere else, so two copies can never drift apart."""

from __future__ import annotations

import ast
from pathlib import Path

import llmos

SRC = Path(llmos.__file__).parent


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(SRC)): ast.parse(p.read_text(), str(p)) for p in sorted(SRC.rglob("*.py"))}


def _defining(name: str) -> list[str]:
    """The modules that define `name` at top level (assignment, class or function)."""
    found = []
    for path, tree in _modules().items():
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                names.append(node.name)
            if name in names:
                found.append(path)
    return found


def _calling(attribute: str) -> list[str]:
    """The modules that call `<something>.<attribute>(...)`."""
    return sorted(path for path, tree in _modules().items()
                  if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == attribute
                         for n in ast.walk(tree)))


def test_ignore_index_is_defined_once():
    assert _defining("IGNORE_INDEX") == ["model/heads.py"]


def test_checkpoint_error_is_defined_once():
    assert _defining("CheckpointError") == ["checkpoint/safetensors_io.py"]


def test_only_the_atomic_files_module_fsyncs():
    assert _calling("fsync") == ["atomic_files.py"]


def test_a_too_long_input_has_one_error_type():
    assert _defining("ContextLengthError") == ["model/transformer.py"]
    assert _defining("PromptTooLongError") == []


def test_one_conversion_to_an_llmos_tokenizer():
    assert _defining("as_tokenizer") == ["tokenizer/from_any.py"]
    assert _defining("SPECIAL_SPELLINGS") + _defining("_SPECIAL_SPELLINGS") == ["tokenizer/from_any.py"]
    assert _defining("backend_of") == []


def test_one_reading_of_eos_token_id():
    assert _defining("token_id_list") == ["config.py"]
    assert _defining("_eos_ids") == []


def test_one_definition_of_what_ends_a_reply_and_of_padding_and_cutting_it():
    assert _defining("stop_token_ids") == ["generation/replies.py"]
    assert _defining("END_OF_TURN_TOKENS") == ["generation/replies.py"]
    assert _defining("left_pad") == ["generation/replies.py"]
    assert _defining("TextStream") == ["generation/replies.py"]
    assert _defining("reply_ends") == []  # the playground's own definition, gone


def test_one_generation_service_and_one_loader():
    assert _defining("Generator") == ["generation/service.py"]
    assert _defining("load_model") == ["generation/loading.py"]
    assert _defining("load_for_serving") == [] and _defining("load_causal_lm") == ["apps/pipelines/base.py"]
    # the engine takes requests from the HTTP routes' dispatch and from its Generator backend, no one else
    submitting = sorted(path for path, tree in _modules().items()
                        if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "submit"
                               and isinstance(n.func.value, ast.Attribute) and n.func.value.attr == "engine"
                               for n in ast.walk(tree)))
    assert submitting == ["serving/dispatch.py", "serving/generator.py"]
    # models load through load_model: the Auto* classes' from_pretrained is called there and nowhere else
    loading = sorted(path for path, tree in _modules().items()
                     if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                            and n.func.attr == "from_pretrained" and isinstance(n.func.value, ast.Name)
                            and n.func.value.id.startswith("AutoModel") for n in ast.walk(tree)))
    assert loading == []  # load_model calls them through a table (auto[head].from_pretrained)

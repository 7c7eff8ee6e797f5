"""build_stdlib_corpus: real prose from the standard library, bounded, deterministic."""

from __future__ import annotations

import pytest

from llmos.data import Corpus
from llmos.data.stdlib_corpus import SKIPPED_MODULES, build_stdlib_corpus, stdlib_module_names
from llmos.errors import LLMOSError


def test_folder_output_has_one_document_per_topic_and_module_within_the_budget(tmp_path):
    paths = build_stdlib_corpus(tmp_path / "std", max_bytes=600_000)
    assert sum(p.stat().st_size for p in paths) <= 600_000
    names = [p.stem for p in paths]
    topics = [n for n in names if n.startswith("reference.")]
    modules = names[len(topics) :]
    assert names[: len(topics)] == topics and len(topics) > 20  # the language reference first
    assert "reference.assert" in topics
    assert "assert" in (tmp_path / "std" / "reference.assert.txt").read_text()
    assert len(modules) > 3 and modules[0] == "abc"
    module_text = (tmp_path / "std" / "abc.txt").read_text(encoding="utf-8")
    assert module_text.startswith("Module abc") and "class ABC" in module_text
    assert len(list(Corpus([tmp_path / "std"], max_document_chars=10**9))) == len(paths)


def test_output_is_deterministic_and_free_of_memory_addresses(tmp_path):
    first = build_stdlib_corpus(tmp_path / "a.txt", max_bytes=600_000)[0].read_text()
    second = build_stdlib_corpus(tmp_path / "b.txt", max_bytes=600_000)[0].read_text()
    assert first == second
    assert " at 0x" not in first
    assert "class ABC" in first  # module documentation follows the reference topics


def test_modules_with_side_effects_are_never_imported():
    names = stdlib_module_names()
    assert not SKIPPED_MODULES & set(names)
    assert "json" in names and "antigravity" not in names and "this" not in names


def test_non_positive_budget_is_an_error(tmp_path):
    with pytest.raises(LLMOSError, match="max_bytes"):
        build_stdlib_corpus(tmp_path / "x", max_bytes=0)

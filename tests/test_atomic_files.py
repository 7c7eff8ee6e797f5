"""llmos.atomic_files: a reader sees the old file or directory or the new one, never a part."""

from __future__ import annotations

import pytest

from llmos import atomic_files
from llmos.atomic_files import atomic_directory, atomic_write_text, replace_directory
from llmos.errors import LLMOSError


def test_atomic_directory_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "first"
    with atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary left beside it


def test_atomic_directory_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "ckpt").write_text("not a directory")
    with pytest.raises(LLMOSError, match="ckpt exists and is not a directory"), \
            atomic_directory(tmp_path / "ckpt"):
        pass


def test_replace_directory_keeps_nothing_of_the_previous_one(tmp_path):
    target, new, previous = tmp_path / "last", tmp_path / "last.tmp", tmp_path / "last.old"
    target.mkdir()
    (target / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")
    replace_directory(new, target, previous)
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert not new.exists() and not previous.exists()


def test_atomic_write_text_replaces_a_file_whole_and_a_failed_write_leaves_the_old_one(tmp_path, monkeypatch):
    target = atomic_write_text(tmp_path / "state.json", "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_files.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "newer")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["state.json"]

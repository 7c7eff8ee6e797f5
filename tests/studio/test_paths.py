"""Paths from requests resolve inside the studio's folders only: relative to a folder or to the working
folder (as a user types them), never outside, `..` and symlinks included."""

import pytest

from llmos.studio.paths import StudioError, confined


def test_relative_paths_resolve_against_each_folder_then_the_working_folder(tmp_path, monkeypatch):
    data, other = tmp_path / "data", tmp_path / "other"
    (data / "shards").mkdir(parents=True)
    (other / "notes.txt").parent.mkdir()
    (other / "notes.txt").write_text("hi")
    monkeypatch.chdir(tmp_path)
    assert confined("shards", [data, other]) == data / "shards"
    assert confined("data/shards", [data, other]) == data / "shards"  # as typed from the working folder
    assert confined("notes.txt", [data, other]) == other / "notes.txt"  # the folder where it exists
    assert confined("new.txt", [data, other]) == data / "new.txt"  # nothing exists: the first folder
    assert confined(str(data / "shards"), [data]) == data / "shards"


def test_paths_outside_the_folders_are_refused_with_the_folders_named(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secret").mkdir()
    (data / "link").symlink_to(tmp_path / "secret")
    monkeypatch.chdir(tmp_path)
    assert confined("secret", [data]) == data / "secret"  # read inside the folder (where it does not exist)
    for path in ("../secret", str(tmp_path / "secret"), "link", "/etc/passwd"):
        with pytest.raises(StudioError) as caught:
            confined(path, [data], what="data_dir", field="data_dir")
        assert caught.value.status == 403 and caught.value.field == "data_dir", path
        assert f"data_dir {path!r} is outside the studio's folders [{str(data)!r}]" == str(caught.value)
    with pytest.raises(StudioError, match="data_dir is empty"):
        confined(" ", [data], what="data_dir")

import errno
import json
import os

import pytest

from genreid.errors import GenreidError
from genreid.utils.atomic import atomic_dir, atomic_path, write_json


def test_write_json_is_sorted_and_complete(tmp_path):
    p = write_json(tmp_path / "m.json", {"b": 1, "a": 2})
    assert p.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_failure_leaves_previous_file_intact(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_atomic_dir_swaps_only_on_success(tmp_path):
    target = tmp_path / "split"
    with atomic_dir(target) as d:
        (d / "a.txt").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "b.txt").write_text("2")
            raise RuntimeError
    assert sorted(os.listdir(target)) == ["a.txt"]
    assert sorted(os.listdir(tmp_path)) == ["split"]


@pytest.mark.parametrize("err, fragment", [(errno.EROFS, "make the output directory writable"),
                                           (errno.EACCES, "make the output directory writable"),
                                           (errno.ENOSPC, "no space left on device")])
def test_unwritable_or_full_disk_gives_clear_error_and_keeps_old_file(tmp_path, monkeypatch, err, fragment):
    """Read-only or full output folders (injected: the suite runs as root, which ignores modes)."""
    target = tmp_path / "m.json"
    write_json(target, {"old": True})

    def failing_replace(src, dst):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(GenreidError, match=fragment) as info:
        write_json(target, {"new": True})
    assert str(target) in str(info.value)
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["m.json"]


def test_written_files_and_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        f = write_json(tmp_path / "m.json", {})
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(old)
    assert (f.stat().st_mode & 0o777) == 0o644
    assert ((tmp_path / "d").stat().st_mode & 0o777) == 0o755

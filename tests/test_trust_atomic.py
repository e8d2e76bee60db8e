"""Identical weights give identical files; a full disk gives a message."""

import errno
import hashlib
import io
import os

import pytest
import torch

from genreid.errors import GenreidError
from genreid.models.id_encoder import build_encoder, save_encoder
from genreid.utils import atomic
from genreid.utils.atomic import torch_save


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_same_weights_saved_twice_give_the_same_bytes(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder("resnet18", "none", "avg", 16, 1, 4)
    a = save_encoder(enc, tmp_path / "a" / "encoder.pt", {"epoch": 1})
    b = save_encoder(enc, tmp_path / "b" / "encoder.pt", {"epoch": 1})
    c = save_encoder(enc, tmp_path / "a" / "encoder.pt", {"epoch": 1})  # overwrite in place
    assert _md5(a) == _md5(b) == _md5(c)


def test_the_temporary_name_is_not_stored_in_the_archive(tmp_path):
    import zipfile

    path = torch_save({"w": torch.ones(3)}, tmp_path / "ckpt_000000001.pt")
    names = zipfile.ZipFile(path).namelist()
    assert all(n.startswith("archive/") for n in names), names
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))


class _FullDisk(io.FileIO):
    """A file whose writes fail after the first block, as on a disk that fills during a save."""

    def write(self, data):
        if self.tell() > 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_disk_full_during_a_checkpoint_save_is_a_clear_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "ckpt" / "ckpt_000000002.pt"
    torch_save({"w": torch.zeros(4)}, target)
    before = _md5(target)
    real_open = open

    def full_open(file, mode="r", *args, **kwargs):
        if "w" in mode and "b" in mode and str(file).endswith(".tmp"):
            return _FullDisk(file, "w")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_open)
    with pytest.raises(GenreidError) as err:
        torch_save({"w": torch.ones(100_000)}, target)
    monkeypatch.undo()
    text = str(err.value)
    assert text.startswith(f"disk full (no space left on device) writing {target}: ")
    assert "free" in text and "df -h" in text and "unexpected pos" not in text
    assert _md5(target) == before and sorted(os.listdir(target.parent)) == [target.name]


def test_disk_full_message_names_the_free_space(tmp_path):
    err = atomic._explain_os_error(tmp_path / "new" / "x.pt", OSError(errno.ENOSPC, "No space left on device"))
    assert f"MiB free in {tmp_path}" in err.problem

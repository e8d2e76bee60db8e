"""Faults that would silently corrupt a researcher's record: damaged model files, damaged checkpoints,
imports that do not fit, settings that change while a stage runs. Each is refused by name with the fix."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from genreid.engine.checkpoint import Checkpointer
from genreid.errors import CheckpointError
from genreid.models.id_encoder import build_encoder, load_encoder, save_encoder


def flip_tensor_byte(path: Path) -> None:
    """Flip one bit in the middle of the largest tensor's bytes: the zip still reads, the values differ."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    raw[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def _tiny_encoder():
    return build_encoder(backbone="resnet18", pretrained="none", embedding_dim=8, stripes=2)


def test_a_flipped_byte_in_an_encoder_file_is_named_with_the_fix(tmp_path):
    path = save_encoder(_tiny_encoder(), tmp_path / "encoder.pt", {"epoch": 3})
    load_encoder(path)  # intact: loads
    flip_tensor_byte(path)
    torch.load(path, weights_only=True)  # torch itself reads the damaged file without complaint
    with pytest.raises(CheckpointError) as err:
        load_encoder(path)
    text = str(err.value)
    assert str(path) in text and "damaged" in text and "dvc repro --force" in text and "dvc pull" in text


def test_a_flipped_byte_in_a_generator_file_is_named(tmp_path):
    from genreid.config.sections.model import GeneratorWidths
    from genreid.models.generator import build_generator, load_generator, save_generator

    widths = GeneratorWidths(str_channels=[4, 8, 8, 8], str_out=8, dec_channels=[8, 4], mlp_dim=8,
                             dis_channels=[4, 8], dis_scales=1, res_blocks=1)
    path = save_generator(tmp_path / "generator.pt", *build_generator(widths, stripe_dim=8, stripes=2))
    load_generator(path)
    flip_tensor_byte(path)
    with pytest.raises(CheckpointError, match="generator checkpoint .*generator.pt is damaged"):
        load_generator(path)


def test_a_damaged_newest_checkpoint_is_skipped_for_the_older_one(tmp_path, caplog):
    ckpt = Checkpointer(tmp_path, keep=2)
    ckpt.save(1, 0, 1, {"w": {"x": torch.arange(64.0)}})
    newest = ckpt.save(2, 0, 2, {"w": {"x": torch.arange(64.0) * 2}})
    flip_tensor_byte(newest)
    blob = ckpt.latest()
    assert blob["step"] == 1 and torch.equal(blob["state"]["w"]["x"], torch.arange(64.0))
    assert "damaged" in caplog.text and newest.name in caplog.text


@pytest.mark.parametrize("entry, value", [("state", [1, 2]), ("step", "seven"), ("rng", None)])
def test_a_checkpoint_entry_of_the_wrong_type_is_named(tmp_path, entry, value):
    from genreid.utils.atomic import torch_save

    ckpt = Checkpointer(tmp_path)
    path = ckpt.save(1, 0, 1, {"w": {"x": torch.zeros(2)}})
    blob = torch.load(path, weights_only=True)
    blob[entry] = value
    blob.pop("content_sha256")  # as another program would write it
    torch_save(blob, path)
    with pytest.raises(CheckpointError, match=f"entry '{entry}' is"):
        ckpt.latest()


def test_a_trainer_refuses_a_checkpoint_state_entry_that_is_no_mapping(tmp_path):
    from genreid.engine.trainer import _Counters
    from genreid.utils.atomic import torch_save

    class Step:  # the least a Trainer needs to restore
        name = stage = "toy"

        def state(self):
            return {}

        def optimisers(self):
            return {}

    from genreid.engine.dist import DistInfo
    from genreid.engine.trainer import Trainer

    trainer = Trainer(Step(), info=DistInfo(), epochs=1, ckpt_dir=tmp_path / "ckpt", results_dir=tmp_path / "res")
    path = trainer.checkpointer.save(1, 0, 1, {"engine": _Counters().state_dict()})
    blob = torch.load(path, weights_only=True)
    blob["state"]["engine"] = 3
    blob.pop("content_sha256")
    torch_save(blob, path)
    with pytest.raises(CheckpointError, match=r"state\.engine is int, expected a mapping"):
        trainer._restore()

"""Model files are read with weights_only=True; a crafted pickle runs nothing."""

import builtins

import numpy as np
import pytest
import torch

from genreid.config.sections.model import GeneratorWidths
from genreid.errors import CheckpointError, GenreidError
from genreid.models.generator import build_generator, load_generator, save_generator
from genreid.models.id_encoder import build_encoder, load_encoder, save_encoder
from genreid.utils.safe_load import plain

TINY = GeneratorWidths(str_channels=[4, 4, 4, 4], str_out=8, dec_channels=[8, 4], mlp_dim=8,
                       dis_channels=[4, 4], dis_scales=1, res_blocks=1)


class _Payload:
    """Unpickling this calls open(marker, 'w'): the file appears only if the pickle ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def _crafted(path, marker, **entries):
    torch.save({"format": "x", **entries, "extra": {"evil": _Payload(marker)}}, path)
    return path


def _small_encoder():
    torch.manual_seed(0)
    return build_encoder("resnet18", "none", "avg", 16, 1, 4)


def test_the_payload_is_real(tmp_path):
    """Sanity: the crafted file does run code under the old loader (weights_only=False)."""
    marker = tmp_path / "pwned"
    torch.load(_crafted(tmp_path / "x.pt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("loader, name", [(load_encoder, "encoder.pt"), (load_generator, "generator.pt")])
def test_crafted_model_file_is_refused_and_runs_nothing(tmp_path, loader, name):
    marker = tmp_path / "pwned"
    path = _crafted(tmp_path / name, marker)
    with pytest.raises(CheckpointError) as err:
        loader(path)
    assert not marker.exists()
    text = str(err.value)
    assert str(path) in text and "refused to load" in text and "nothing in it was executed" in text


def test_crafted_hmr_checkpoint_and_evaluation_input_run_nothing(tmp_path):
    from genreid.evaluation.cli import load_arrays
    from genreid.meshes.hmr import build_hmr

    marker = tmp_path / "pwned"
    path = _crafted(tmp_path / "model_checkpoint.pt", marker)
    with pytest.raises(CheckpointError, match="refused to load HMR checkpoint"):
        build_hmr(path, None)
    with pytest.raises(GenreidError, match="refused to load evaluation input"):
        load_arrays(_crafted(tmp_path / "feats.pt", marker))
    assert not marker.exists()


def test_extras_are_stored_as_plain_values(tmp_path):
    extra = {"epoch": np.int64(3), "val_mAP": np.float32(0.5), "history": [{"loss": np.float64(1.5)}],
             "shape": (1, 2), "where": tmp_path, "curve": np.arange(3)}
    path = save_encoder(_small_encoder(), tmp_path / "encoder.pt", extra)
    blob = torch.load(path, weights_only=True)  # the strict loader reads every entry
    assert blob["extra"]["epoch"] == 3 and type(blob["extra"]["epoch"]) is int
    _, got = load_encoder(path)
    assert got["history"] == [{"loss": 1.5}] and got["shape"] == [1, 2] and got["where"] == str(tmp_path)
    assert torch.equal(got["curve"], torch.arange(3))
    with pytest.raises(TypeError, match="extra.bad"):
        plain({"bad": object()})


def test_generator_round_trips_through_the_weights_only_loader(tmp_path):
    nets = build_generator(TINY, 8, 4)
    path = save_generator(tmp_path / "generator.pt", *nets, extra={"iterations": np.int64(2)})
    e_str, dec, dis, extra = load_generator(path)
    assert extra == {"iterations": 2}
    for a, b in zip(nets, (e_str, dec, dis)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("entry, value", [("state_dict", 5), ("arch", "resnet18"), ("state_dict", {"fc.weight": 1})])
def test_encoder_entry_of_the_wrong_type_is_named(tmp_path, entry, value):
    path = save_encoder(_small_encoder(), tmp_path / "encoder.pt")
    blob = torch.load(path, weights_only=True)
    blob[entry] = value
    torch.save(blob, path)
    with pytest.raises(CheckpointError) as err:
        load_encoder(path)
    assert str(path) in str(err.value) and f"'{entry}'" in str(err.value)


def test_generator_entry_of_the_wrong_type_is_named(tmp_path):
    path = save_generator(tmp_path / "generator.pt", *build_generator(TINY, 8, 4))
    blob = torch.load(path, weights_only=True)
    blob["state"]["decoder"] = [1, 2]
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match=r"entry 'state\.decoder'"):
        load_generator(path)

"""The one checkpoint format: atomic numbered files, weights-only loading, RNG round trip, strict
module loading, and the finite-loss guard."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from genreid.engine.checkpoint import Checkpointer
from genreid.engine.guards import assert_finite
from genreid.engine.schedule import StepSchedule
from genreid.errors import CheckpointError, TrainingDiverged
from genreid.models.state import load_state_strict


def test_save_latest_keep_and_every_rng_roundtrip(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, 0, step, {"w": {"x": torch.full((2,), float(step)), "labels": np.arange(3)}})
    assert [p.name for p in ckpt.paths()] == ["ckpt_000000002.pt", "ckpt_000000003.pt"]
    blob = ckpt.latest()
    assert blob["step"] == 3 and blob["iter_in_epoch"] == 3
    assert torch.equal(blob["state"]["w"]["x"], torch.full((2,), 3.0))
    assert torch.equal(blob["state"]["w"]["labels"], torch.arange(3))  # numpy arrays stored as tensors
    expected = (random.random(), np.random.rand(), torch.rand(3))
    from genreid.engine.checkpoint import set_rng_state

    set_rng_state(blob["rng"])
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[0] == again[0] and expected[1] == again[1] and torch.equal(expected[2], again[2])


def test_same_state_gives_byte_identical_files(tmp_path):
    a, b = Checkpointer(tmp_path / "a"), Checkpointer(tmp_path / "b")
    state = {"w": torch.arange(5.0)}
    torch.manual_seed(0)
    pa = a.save(7, 1, 0, state)
    torch.manual_seed(0)
    pb = b.save(7, 1, 0, state)
    assert pa.read_bytes() == pb.read_bytes()


def test_truncated_newest_is_skipped_and_stale_temporaries_removed(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, 0, 1, {"x": {"v": 1}})
    (tmp_path / "ckpt_000000002.pt").write_bytes(b"truncated")
    (tmp_path / ".ckpt_000000003.pt.abc.tmp").write_bytes(b"partial")
    again = Checkpointer(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
    assert again.latest()["state"]["x"]["v"] == 1


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_pickle_is_refused_by_name_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "ckpt" / "ckpt_000000005.pt"
    bad.parent.mkdir()
    torch.save({"format": "x", "payload": _Payload(str(marker))}, bad, pickle_module=pickle)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="ckpt_000000005.pt holds objects other than tensors"):
        Checkpointer(bad.parent).latest()
    assert not marker.exists()


def test_strict_loading_lists_keys_and_refuses_non_mappings():
    a = torch.nn.Sequential(torch.nn.Linear(2, 3))
    b = torch.nn.Sequential(torch.nn.Linear(2, 4))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_state_strict(a, b.state_dict(), "b.pt")
    sd = a.state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["0.bias"]
    with pytest.raises(CheckpointError) as info:
        load_state_strict(a, sd, "a.pt")
    assert "0.bias" in str(info.value) and "extra.weight" in str(info.value)
    with pytest.raises(CheckpointError, match="not a mapping"):
        load_state_strict(a, [1, 2], "c.pt")


def test_assert_finite_names_the_term_and_the_fix():
    assert_finite({"loss": torch.tensor(1.0)}, "iter 1", "lower the lr")
    with pytest.raises(TrainingDiverged, match="(?s)loss_rec became nan at epoch 2.*lower the lr"):
        assert_finite({"ok": 0.0, "loss_rec": float("nan")}, "epoch 2", "lower the lr")


def test_step_schedule_matches_torch_steplr_and_the_warm_start():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=3.5e-4)
    steplr = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    ours = StepSchedule({"e": 3.5e-4}, 0.1, StepSchedule.every(2, 7))
    for epoch in range(7):
        assert ours.lr("e", epoch, 0) == opt.param_groups[0]["lr"], epoch  # the same floats, bit for bit
        steplr.step()
    warm = StepSchedule({"g": 1e-4, "d": 1e-4}, warm_iters=3, warm_lr=2e-3, warm=("g",))
    assert [warm.lr("g", 0, i) for i in (0, 2, 3)] == [2e-3, 2e-3, 1e-4] and warm.lr("d", 0, 0) == 1e-4
    once = StepSchedule({"id": 3.5e-4}, 0.1, [10])
    assert once.lr("id", 9, 0) == 3.5e-4 and once.lr("id", 10, 0) == 3.5e-4 * 0.1 and once.factor(19) == 0.1

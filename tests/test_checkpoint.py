import pytest
import torch

from genreid.errors import CheckpointError, TrainingDiverged
from genreid.training.checkpoint import CheckpointManager, assert_finite, load_state_strict


def test_save_latest_keep_and_rng_roundtrip(tmp_path):
    mgr = CheckpointManager(tmp_path, keep=2)
    torch.manual_seed(0)
    for step in (1, 2, 3):
        mgr.save(step, {"w": torch.full((2,), float(step))})
    assert [p.name for p in mgr.paths()] == ["ckpt_000000002.pt", "ckpt_000000003.pt"]
    state = mgr.latest()
    assert state["step"] == 3 and torch.equal(state["w"], torch.full((2,), 3.0))
    expected = torch.rand(3)
    mgr.restore_rng(state)
    assert torch.equal(torch.rand(3), expected)


def test_corrupt_newest_is_skipped_and_stale_temporaries_removed(tmp_path):
    mgr = CheckpointManager(tmp_path)
    mgr.save(1, {"x": 1})
    (tmp_path / "ckpt_000000002.pt").write_bytes(b"truncated")
    (tmp_path / ".ckpt_000000003.pt.abc.tmp").write_bytes(b"partial")
    mgr2 = CheckpointManager(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
    assert mgr2.latest()["x"] == 1


def test_strict_loading_lists_keys():
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


def test_assert_finite_names_the_term():
    assert_finite({"loss": torch.tensor(1.0)}, "iter 1")
    with pytest.raises(TrainingDiverged, match="loss_rec became nan at epoch 2"):
        assert_finite({"ok": 0.0, "loss_rec": float("nan")}, "epoch 2")

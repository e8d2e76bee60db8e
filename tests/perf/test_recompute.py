"""runtime.activation_checkpointing: checkpointed conv blocks give the same losses, gradients, weights
and BatchNorm statistics as the plain networks after an iteration of each stage; names are unchanged."""

from __future__ import annotations

import pytest
import torch

from genreid.engine.recompute import checkpoint_blocks, checkpointed_blocks
from genreid.models.id_encoder import build_encoder
from genreid.perf import profile
from genreid.perf.profile import DRY, make_stage


def _run(stage: str, checkpointing: bool):
    built = []
    real = profile.AmpContext

    class Spy(real):
        def module(self, m):
            built.append(super().module(m))
            return built[-1]

    profile.AmpContext = Spy
    try:
        fn, _ = make_stage(stage, DRY, "cpu", checkpointing=checkpointing, seed=3)
    finally:
        profile.AmpContext = real
    torch.manual_seed(5)
    parts = [fn(), fn()]
    return parts, built


@pytest.mark.parametrize("stage", ["warmup", "pretrain", "gcl_plus"])
def test_checkpointing_changes_nothing_but_memory(stage):
    (plain_parts, plain), (ckpt_parts, ckpt) = _run(stage, False), _run(stage, True)
    assert sum(checkpointed_blocks(m) for m in ckpt) > 0
    assert [sorted(p) for p in plain_parts] == [sorted(p) for p in ckpt_parts]
    for a, b in zip(plain_parts, ckpt_parts):
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-7), k
    for m1, m2 in zip(plain, ckpt):
        s1, s2 = m1.state_dict(), m2.state_dict()
        assert list(s1) == list(s2)  # checkpoints stay interchangeable
        for k in s1:
            torch.testing.assert_close(s2[k], s1[k], rtol=1e-5, atol=1e-6, msg=k)


def test_checkpoint_blocks_is_idempotent_and_picks_blocks():
    enc = build_encoder("resnet18", "none")
    n = checkpointed_blocks(checkpoint_blocks(enc))
    assert n == 8  # the ResNet-18 basic blocks, not the stem's layers
    assert checkpointed_blocks(checkpoint_blocks(enc)) == n
    with torch.no_grad():
        enc.eval()(torch.randn(2, 3, 64, 32))

"""UDA source pre-training: the BoT losses and LR rule against hand values, the trainer's outputs,
exact resume after a kill, and the warm-up starting from the source weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genreid.config.schema import RuntimeConfig
from genreid.config.sections.model import ModelConfig
from genreid.config.sections.source import SourceConfig
from genreid.config.sections.warmup import WarmupConfig
from genreid.data.manifest import load_prepared
from genreid.engine.context import RunContext
from genreid.errors import CheckpointError
from genreid.models.id_encoder import build_encoder, load_encoder, save_encoder
from genreid.source.losses import batch_hard_triplet, label_smoothed_ce
from genreid.source.run import source_schedule, train_source
from genreid.warmup.run import encoder_kwargs, warmup_encoder

MODEL = ModelConfig(backbone="resnet18", pretrained="none", pooling="avg", embedding_dim=16, last_stride=1, stripes=4)
WARMUP = WarmupConfig(bn_group_size=8, pooling="gem")
ARGS = encoder_kwargs(MODEL, WARMUP.pooling)


def test_label_smoothed_ce_against_hand_values():
    logits, target, eps = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0]), 0.1
    log_z = math.log(math.exp(2) + 2)
    # q = (1 - eps) onehot + eps / 3: true class 1 - 2/3 eps, the others eps / 3 (BoT eq. 1)
    hand = -((1 - 2 * eps / 3) * (2 - log_z) + 2 * (eps / 3) * (0 - log_z))
    assert label_smoothed_ce(logits, target, eps).item() == pytest.approx(hand, rel=1e-6)
    assert label_smoothed_ce(logits, target, 0.0).item() == pytest.approx(log_z - 2, rel=1e-6)
    x, y = torch.randn(5, 7, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 3, 6, 1, 1])
    assert label_smoothed_ce(x, y, 0.1).item() == pytest.approx(F.cross_entropy(x, y, label_smoothing=0.1).item(),
                                                               rel=1e-6)


def test_batch_hard_triplet_against_hand_values():
    f, y = torch.tensor([[0.0], [1.0], [3.0], [7.0]]), torch.tensor([0, 0, 1, 1])
    # anchors: 0 (ap 1, an 3) -> 0; 1 (1, 2) -> 0; 2 (ap 4, an 2) -> 2.3; 3 (4, 6) -> 0
    assert batch_hard_triplet(f, y, 0.3).item() == pytest.approx(2.3 / 4, rel=1e-6)
    assert batch_hard_triplet(f, y, 3.0).item() == pytest.approx((1 + 2 + 5 + 1) / 4, rel=1e-6)
    g = f.clone().requires_grad_()
    batch_hard_triplet(g, torch.tensor([0, 0, 0, 0]), 0.3).backward()  # no negative anywhere: 0, finite grad
    assert torch.isfinite(g.grad).all()


def test_lr_rule_against_hand_values():
    s = source_schedule(SourceConfig())  # 3.5e-4, warm-up 10 epochs from 0.01, x0.1 at 40 and 70
    hand = {0: 3.5e-6, 5: 3.5e-4 * (0.01 * 0.5 + 0.5), 9: 3.5e-4 * (0.01 * 0.1 + 0.9), 10: 3.5e-4, 39: 3.5e-4,
            40: 3.5e-5, 69: 3.5e-5, 70: 3.5e-6, 79: 3.5e-6}
    for epoch, lr in hand.items():
        assert s.lr("encoder", epoch, 0) == pytest.approx(lr, rel=1e-12), epoch
    assert source_schedule(SourceConfig(warmup_epochs=0)).lr("encoder", 0, 0) == pytest.approx(3.5e-4)


@pytest.fixture(scope="module")
def toy(tmp_path_factory, make_prepared):
    root = make_prepared(tmp_path_factory.mktemp("source_toy") / "prepared" / "toy")
    return load_prepared(root, splits=("train", "val"))


def _cfg(**kw) -> SourceConfig:
    base = dict(epochs=2, iters_per_epoch=2, batch_size=16, num_instances=4, warmup_epochs=1, milestones=[1],
                eval_every=1, extract_batch_size=64)
    return SourceConfig(**{**base, **kw})


def _run(toy, out, **kw):
    ctx = RunContext(seed=1, height=32, width=16, model_dir=out / "models", results_dir=out / "results",
                     runtime=RuntimeConfig(device="cpu"), **kw)
    return train_source(toy["train"], toy["val"], _cfg(), ARGS, ctx)


def test_source_training_selects_on_validation_and_resumes_exactly(toy, tmp_path):
    straight = _run(toy, tmp_path / "straight")
    enc, extra = load_encoder(tmp_path / "straight" / "models" / "encoder.pt")
    assert extra["method"] == "supervised_source" and extra["selected_on"] == "val_map"
    assert extra["num_source_ids"] == int(toy["train"]["pid"].max()) + 1
    assert [h["epoch"] for h in extra["val_map_history"]] == [0, 1]
    hist = straight["history"]
    assert all(r["ce"] > 0 and r["triplet"] >= 0 and r["total"] == pytest.approx(r["ce"] + r["triplet"])
               for r in hist)
    assert [r["lr"] for r in hist] == pytest.approx([3.5e-6, 3.5e-5])  # warm-up epoch 0, then the step at 1
    assert enc.arch == {**ARGS, "pretrained": "none"}

    killed = _run(toy, tmp_path / "resumed", stop_after_iters=3)  # inside epoch 1
    assert killed == {"stopped_early": True, "iterations": 3}
    resumed = _run(toy, tmp_path / "resumed")
    assert resumed["resumed"] is True and resumed["history"] == straight["history"]
    a = load_encoder(tmp_path / "straight" / "models" / "encoder.pt")[0].state_dict()
    b = load_encoder(tmp_path / "resumed" / "models" / "encoder.pt")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "straight" / "models" / "encoder.pt").read_bytes() == \
        (tmp_path / "resumed" / "models" / "encoder.pt").read_bytes()


def test_warmup_starts_from_the_source_weights(tmp_path):
    torch.manual_seed(3)
    src = build_encoder(**ARGS)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p))
    save_encoder(src, tmp_path / "encoder.pt", {"method": "supervised_source"})
    enc = warmup_encoder(MODEL, WARMUP, tmp_path / "encoder.pt")
    ref = src.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in enc.state_dict().items())
    fresh = warmup_encoder(MODEL, WARMUP)
    assert not torch.equal(fresh.fc.weight, src.fc.weight)
    with pytest.raises(CheckpointError, match="architecture differs.*pooling"):
        warmup_encoder(MODEL, WarmupConfig(pooling="avg"), tmp_path / "encoder.pt")
    assert np.isfinite(enc.fc.weight.detach().numpy()).all()

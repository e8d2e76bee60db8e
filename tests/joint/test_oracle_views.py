"""oracle_views: stage 3 with SynthReID's true novel views as the positive view (no generator)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from genreid.config.schema import RuntimeConfig
from genreid.data.loader import IMAGENET_MEAN, IMAGENET_STD
from genreid.data.true_views import TrueViews, write_true_views
from genreid.engine.amp import AmpContext
from genreid.engine.batches import image_dataset
from genreid.engine.context import RunContext
from genreid.engine.dist import DistInfo
from genreid.errors import DataError
from genreid.gan.renders import draw_angles
from genreid.joint.contrastive import StepInputs
from genreid.joint.iteration import EncoderNets, build_optimisers
from genreid.joint.run import JointInputs, train_joint
from genreid.models.id_encoder import load_encoder
from genreid.registry import method_spec

ANGLES = [0, 45, 90, 135, 180, 225, 270, 315]


def _coded_views(df, h: int, w: int, tmp_path):
    """True views whose every pixel codes (row, angle column): value = 8 * row + column (uint8, unique)."""
    n = len(df)
    images = np.zeros((n, len(ANGLES), h, w, 3), np.uint8)
    for i in range(n):
        for j in range(len(ANGLES)):
            images[i, j] = 8 * i + j
    views = TrueViews(paths=[str(p) for p in df["path"]], angles=ANGLES, images=images,
                      masks=np.ones((n, len(ANGLES), h, w), bool), backgrounds=np.zeros((n, h, w, 3), np.uint8),
                      jpeg_quality=np.full(n, 90))
    write_true_views(tmp_path / "true_views", "train", views, df["pid"], df["camid"], generator_version=2)
    return tmp_path / "true_views"


def test_oracle_views_trains_without_a_generator(joint_cfg, gan_toy, tmp_path):
    folder = _coded_views(gan_toy["df"], gan_toy["height"], gan_toy["width"], tmp_path)
    inputs = JointInputs(encoder=gan_toy["encoder"], generator=tmp_path / "missing_generator.pt",
                         renders=tmp_path / "no_renders", true_views=folder)
    ctx = RunContext(seed=1, height=gan_toy["height"], width=gan_toy["width"], model_dir=tmp_path / "models",
                     results_dir=tmp_path / "results", runtime=RuntimeConfig(device="cpu"))
    summary = train_joint(gan_toy["df"], gan_toy["val_df"], inputs, joint_cfg(), "oracle_views", ctx)
    assert not (tmp_path / "missing_generator.pt").exists() and not (tmp_path / "no_renders").exists()
    enc, extra = load_encoder(tmp_path / "models" / "encoder.pt")
    assert extra["method"] == "oracle_views" and [h["epoch"] for h in summary["history"]] == [-1, 0, 1]
    start = load_encoder(gan_toy["encoder"])[0].state_dict()
    assert any(not torch.equal(start[k], v) for k, v in enc.state_dict().items())
    assert not method_spec("oracle_views").needs_generator


def test_the_positive_view_is_the_true_view_at_the_drawn_angle(joint_cfg, gan_toy, tmp_path):
    df, h, w = gan_toy["df"], gan_toy["height"], gan_toy["width"]
    folder = _coded_views(df, h, w, tmp_path)
    cfg = joint_cfg()
    enc = load_encoder(gan_toy["encoder"])[0]
    nets = EncoderNets(enc)
    arm = method_spec("oracle_views").cls(cfg, StepInputs(
        nets=nets, opts=build_optimisers(nets, cfg), dataset=image_dataset(df, h, w), info=DistInfo(),
        amp=AmpContext("cpu"), seed=1, true_views_dir=folder))
    seen = []
    arm.iteration = lambda x, idx, where: seen.append(arm.positive_view(x)) or {}
    rows = torch.tensor([5, 0, 7, 2])
    torch.manual_seed(3)
    arm.run_step(SimpleNamespace(epoch=0, iteration=0), {"image": torch.zeros(4, 3, h, w), "index": rows})
    torch.manual_seed(3)
    drawn = draw_angles(cfg.batch_size, cfg.angles)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    values = ((seen[0] * std + mean) * 255).round()
    for k, (row, angle) in enumerate(zip(rows.tolist(), drawn)):
        assert torch.all(values[k] == 8 * row + ANGLES.index(angle)), (k, row, angle)


def test_oracle_views_says_what_is_missing(joint_cfg, gan_toy, tmp_path):
    cfg = joint_cfg()
    nets = EncoderNets(load_encoder(gan_toy["encoder"])[0])
    inputs = StepInputs(nets=nets, opts=build_optimisers(nets, cfg), info=DistInfo(), amp=AmpContext("cpu"), seed=1,
                        dataset=image_dataset(gan_toy["df"], gan_toy["height"], gan_toy["width"]),
                        true_views_dir=tmp_path / "none")
    with pytest.raises(DataError, match="true_views"):
        method_spec("oracle_views").cls(cfg, inputs)

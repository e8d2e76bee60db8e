"""Stage-3 trainer on the toy dataset: outputs and selection record, exact resume, NaN stop,
every mixing ablation, degenerate clustering stops with a clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gan_toy import make_toy
from test_pretrain import TINY

from genreid.errors import TrainingDiverged
from genreid.memory.instance_memory import InstanceMemory
from genreid.models.generator import build_generator, save_generator
from genreid.models.id_encoder import build_encoder, load_encoder
from genreid.training.gan_batch import AmpContext, GanNets
from genreid.training.joint import JointSettings, _pseudo_labels, train_joint
from genreid.training.joint_step import JointLossSettings, Optimisers, joint_iteration

W = {"rec": 5.0, "cyc": 5.0, "code": 5.0, "cyc_code": 5.0, "adv": 1.0, "r1": 0.01}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("joint")
    data = make_toy(root)
    torch.manual_seed(0)
    save_generator(root / "generator.pt", *build_generator(TINY, 512, 4))
    data["generator"] = root / "generator.pt"
    return data


def _settings(method="gcl_plus", weights=W, **kw) -> JointSettings:
    base = dict(epochs=2, batch_size=4, iters_per_epoch=3, step_epoch=1, k1=6, k2=2, min_samples=2, eps=0.7,
                rho=None, checkpoint_every_iters=2, eval_batch_size=16, log_every=100)
    base.update(kw)
    return JointSettings(losses=JointLossSettings(method=method, weights=weights, num_negatives=8), **base)


def _run(toy, out, settings, **kw):
    return train_joint(toy["df"], toy["val_df"], toy["render_dir"], toy["encoder"], toy["generator"],
                       toy["height"], toy["width"], out / "models", out / "results", settings, **kw)


def test_gcl_trains_the_encoder_and_records_the_selection(toy, tmp_path):
    summary = _run(toy, tmp_path, _settings("gcl", eps=None, rho=0.3))
    enc, extra = load_encoder(tmp_path / "models" / "encoder.pt")
    assert extra["method"] == "gcl" and extra["last_epoch"] == 1 and extra["selected_epoch"] in (0, 1)
    assert extra["resumed"] is False and [h["epoch"] for h in extra["history"]] == [-1, 0, 1]
    assert extra["history"][1]["pseudo_num_clusters"] >= 2 and "pseudo_nmi" in extra["history"][1]
    assert extra["history"][2]["lr_factor"] == pytest.approx(0.1)
    start = load_encoder(toy["encoder"])[0].state_dict()
    assert any(not torch.equal(start[k], v) for k, v in enc.state_dict().items())
    saved = json.loads((tmp_path / "results" / "train" / "summary.json").read_text())
    assert saved["iterations"] == 6 and summary["images_per_s"] > 0
    assert (tmp_path / "results" / "train" / "metrics.json").is_file()  # dvclive summary for the report


def test_gcl_plus_resume_after_kill_is_exact(toy, tmp_path):
    s = _settings(selection="last")
    _run(toy, tmp_path / "straight", s)
    killed = _run(toy, tmp_path / "resumed", s, stop_after_iters=4)  # mid-epoch 1, after a re-clustering
    assert killed["stopped_early"]
    assert _run(toy, tmp_path / "resumed", s)["resumed"] is True
    a = load_encoder(tmp_path / "straight" / "models" / "encoder.pt")[0].state_dict()
    b = load_encoder(tmp_path / "resumed" / "models" / "encoder.pt")[0].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(toy, tmp_path):
    _run(toy, tmp_path, _settings(epochs=1))
    before = sorted((tmp_path / "models" / "ckpt").glob("ckpt_*.pt"))
    with pytest.raises(TrainingDiverged, match="became nan"):
        _run(toy, tmp_path, _settings(epochs=2, weights={**W, "cyc": float("nan")}))
    assert sorted((tmp_path / "models" / "ckpt").glob("ckpt_*.pt")) == before


@pytest.mark.parametrize("mixup", ["d_mixup", "mixup", "f_mixup", "none"])
def test_every_mixing_variant_runs_one_iteration(mixup):
    torch.manual_seed(0)
    enc = build_encoder("resnet18", "none", "avg", 8, 1, 4)
    nets = GanNets(enc, *build_generator(TINY, 512, 4))
    opts = Optimisers(torch.optim.Adam(nets.generator_parameters()), torch.optim.Adam(nets.discriminator.parameters()),
                      torch.optim.SGD(enc.parameters(), lr=0.1))
    memory = InstanceMemory(12, 8)
    memory.initialise(torch.randn(12, 8))
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1, -1])
    memory.set_labels(labels)
    protos = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    s = JointLossSettings(method="gcl_plus", weights=W, num_negatives=4, mixup=mixup)
    idx = torch.tensor([0, 1, 3, 6])
    before = memory.features.clone()
    w0 = enc.fc.weight.detach().clone()
    parts = joint_iteration(nets, opts, AmpContext(torch.device("cpu")), memory, protos, torch.randn(4, 3, 32, 16),
                            torch.randn(4, 1, 32, 16), torch.randn(4, 1, 32, 16), idx, labels[idx], s, "test")
    assert ("proto_soft" in parts) == (mixup != "none")
    assert parts["d_total"] > 0 and np.isfinite(parts["total"])
    assert not torch.equal(enc.fc.weight, w0)  # E_id stepped
    changed = (memory.features != before).any(1)
    assert changed[idx].all() and not changed[[2, 4, 5, 7, 8, 9, 10, 11]].any()


def test_collapsed_clustering_stops_with_a_clear_message():
    memory = InstanceMemory(20, 4)
    memory.initialise(torch.randn(20, 4))
    s = _settings(eps=1e-6, min_samples=4)
    with pytest.raises(TrainingDiverged, match="fewer than one batch"):
        _pseudo_labels(memory, s, np.arange(20), epoch=0)

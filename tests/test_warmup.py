"""Warm-up trainer (stage 1) on a tiny generated dataset: outputs, selection, exact resume, errors, stage."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml
from warmup_toy import make_prepared

from genreid.config.loader import dump_yaml, resolve_recipe
from genreid.data.manifest import load_prepared
from genreid.errors import ConfigError, GenreidError
from genreid.models.id_encoder import load_encoder
from genreid.models.layers import GhostBatchNorm
from genreid.training.warmup import WarmupSettings, train_warmup

STAGE = Path(__file__).resolve().parents[1] / "stages" / "warmup.py"
RECIPE = Path(__file__).resolve().parents[1] / "params" / "tiny.yaml"
ARCH = dict(backbone="resnet18", pretrained="none", pooling="gem", embedding_dim=16, last_stride=1, stripes=4)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = make_prepared(tmp_path_factory.mktemp("warmup_toy") / "prepared" / "toy")
    return load_prepared(root, splits=("train", "val"))


def _settings(**kw) -> WarmupSettings:
    base = dict(epochs=2, iters_per_epoch=1, batch_size=16, num_instances=4, bn_group_size=8, k1=10, k2=3,
                eval_every=1, extract_batch_size=64, log_every=1000)
    base.update(kw)
    return WarmupSettings(**base)


def _run(toy, out, val=True, **kw):
    return train_warmup(toy["train"], toy["val"] if val else None, ARCH, 32, 16, out / "models", out / "results",
                        _settings(**kw.pop("settings", {})), **kw)


def _without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_warmup_outputs_selection_and_exact_resume_after_a_kill(toy, tmp_path):
    straight = _run(toy, tmp_path / "straight")
    model, extra = load_encoder(tmp_path / "straight" / "models" / "encoder.pt")
    assert model.arch == ARCH and not any(isinstance(m, GhostBatchNorm) for m in model.modules())
    assert extra["last_epoch"] == 1 and extra["resumed"] is False and extra["selected_on"] == "val_mAP"
    val = [h["val_mAP"] for h in extra["val_mAP_history"]]
    assert [h["epoch"] for h in extra["val_mAP_history"]] == [0, 1] and extra["val_mAP"] == max(val)
    assert extra["selected_epoch"] == val.index(max(val))
    last = torch.load(sorted((tmp_path / "straight" / "models" / "ckpt").glob("ckpt_*.pt"))[-1], weights_only=False)
    assert last["best"]["epoch"] == extra["selected_epoch"]
    for k, v in model.state_dict().items():  # the selected epoch's weights, not the last epoch's
        assert torch.equal(v, last["best"]["state_dict"][k]), k
    rows = straight["history"]
    assert len(rows) == 2 and all(r["clusters"] >= 1 and 0 <= r["outlier_ratio"] <= 1 for r in rows)
    assert all(0 <= r["nmi"] <= 1 and -1 <= r["ari"] <= 1 and r["loss"] > 0 for r in rows)
    train_dir = tmp_path / "straight" / "results" / "train"
    assert json.loads((train_dir / "summary.json").read_text())["selected_epoch"] == extra["selected_epoch"]
    assert {"loss", "clusters", "outlier_ratio", "nmi", "ari", "val_mAP"} <= set(
        json.loads((train_dir / "metrics.json").read_text()))

    killed = _run(toy, tmp_path / "resumed", stop_after_iters=2)
    assert killed == {"stopped_early": True, "epoch": 1, "iterations_this_call": 2}  # died before epoch 1 ended
    resumed = _run(toy, tmp_path / "resumed")
    assert resumed["resumed"] is True
    assert _without_time(resumed["history"]) == _without_time(straight["history"])
    b, extra_b = load_encoder(tmp_path / "resumed" / "models" / "encoder.pt")
    assert extra_b["resumed"] is True and extra_b["selected_epoch"] == extra["selected_epoch"]
    for (k, v1), v2 in zip(model.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v1, v2), k
    loss_rows = (tmp_path / "resumed" / "results" / "train" / "plots" / "metrics" / "loss.tsv").read_text()
    assert len(loss_rows.strip().splitlines()) == 1 + 2  # header + one row per epoch, none duplicated


def test_without_validation_the_last_epoch_is_kept(toy, tmp_path):
    summary = _run(toy, tmp_path, val=False, settings={"epochs": 1})
    assert summary["selected_on"] == "last_epoch" and summary["selected_epoch"] == 0


def test_zero_clusters_is_a_clear_error(toy, tmp_path):
    with pytest.raises(GenreidError, match="no cluster.*min_samples 500"):
        _run(toy, tmp_path, settings={"min_samples": 500})


def test_batch_must_split_into_pk_groups(toy, tmp_path):
    with pytest.raises(ConfigError, match="num_instances"):
        _run(toy, tmp_path, settings={"batch_size": 18})


def test_stage_runs_from_params_and_refuses_uda(toy, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("warmup_stage", STAGE)
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    prepared = tmp_path / "data" / "prepared" / "synthetic"
    make_prepared(prepared, train_ids=6, val_ids=3)
    tree = resolve_recipe(RECIPE)
    tree["data"]["root"] = str(tmp_path / "data")
    tree["warmup"].update(epochs=1, iters_per_epoch=1, batch_size=8, num_instances=4)
    tree["warmup"]["cluster"].update(k1=8, k2=3)
    params = tmp_path / "params.yaml"
    params.write_text(dump_yaml(tree))
    monkeypatch.chdir(tmp_path)
    assert stage.main(["--dataset", "synthetic", "--params", str(params)]) == 0
    _, extra = load_encoder(tmp_path / "models" / "synthetic" / "baseline" / "encoder.pt")
    assert extra["epochs"] == 1 and extra["selected_on"] == "val_mAP"
    resolved = yaml.safe_load((tmp_path / "results" / "synthetic" / "baseline" / "train" /
                               "config.resolved.yaml").read_text())
    assert resolved["warmup"]["iters_per_epoch"] == 1
    tree["warmup"]["source_dataset"] = "market1501"
    params.write_text(dump_yaml(tree))
    assert stage.main(["--dataset", "synthetic", "--params", str(params)]) == 2
    assert (tmp_path / "models" / "synthetic" / "baseline" / "ckpt").is_dir()


def test_augment_batch_draws_per_image_and_keeps_shape():
    from genreid.training.warmup import augment_batch

    torch.manual_seed(0)
    one = torch.rand(3, 32, 16) + 1.0  # strictly positive: zeros can only come from padding/erasing
    images = one.expand(16, 3, 32, 16).clone()
    torch.manual_seed(1)
    out = augment_batch(images)
    assert out.shape == images.shape
    distinct = {tuple(o.flatten()[::97].tolist()) for o in out}
    assert len(distinct) > 4  # the same image comes out differently: each image draws its own transform
    assert any((o == 0).any() for o in out) and not all(torch.equal(o, one) for o in out)
    torch.manual_seed(1)
    torch.testing.assert_close(augment_batch(images), out)  # drawn from torch's seeded RNG

"""Warm-up (stage 1) on a tiny generated dataset: outputs, selection, exact resume, errors, stage."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

from genreid.config.loader import dump_yaml, resolve_recipe
from genreid.config.schema import RuntimeConfig
from genreid.config.sections.model import ModelConfig
from genreid.config.sections.warmup import WarmupConfig
from genreid.data.manifest import load_prepared
from genreid.engine.context import RunContext
from genreid.errors import ConfigError, GenreidError, TrainingDiverged
from genreid.models.id_encoder import load_encoder
from genreid.models.layers import GhostBatchNorm
from genreid.warmup.batches import augment_batch
from genreid.warmup.run import train_warmup

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "stages" / "warmup.py"
RECIPE = ROOT / "params" / "tiny.yaml"
MODEL = ModelConfig(backbone="resnet18", pretrained="none", pooling="avg", embedding_dim=16, last_stride=1,
                    stripes=4)
ARCH = dict(backbone="resnet18", pretrained="none", pooling="gem", embedding_dim=16, last_stride=1, stripes=4)


@pytest.fixture(scope="module")
def toy(tmp_path_factory, make_prepared):
    root = make_prepared(tmp_path_factory.mktemp("warmup_toy") / "prepared" / "toy")
    return load_prepared(root, splits=("train", "val"))


def _cfg(**kw) -> WarmupConfig:
    base = dict(epochs=2, iters_per_epoch=1, batch_size=16, num_instances=4, bn_group_size=8, eval_every=1,
                extract_batch_size=64, cluster={"k1": 10, "k2": 3})
    base.update(kw)
    return WarmupConfig(**base)


def _run(toy, out, val=True, cfg=None, **kw):
    ctx = RunContext(seed=1, height=32, width=16, model_dir=out / "models", results_dir=out / "results",
                     runtime=RuntimeConfig(device="cpu"), **kw)
    return train_warmup(toy["train"], toy["val"] if val else None, cfg or _cfg(), MODEL, ctx)


def test_warmup_outputs_selection_and_exact_resume_after_a_kill(toy, tmp_path):
    straight = _run(toy, tmp_path / "straight")
    model, extra = load_encoder(tmp_path / "straight" / "models" / "encoder.pt")
    assert model.arch == ARCH and not any(isinstance(m, GhostBatchNorm) for m in model.modules())
    assert extra["last_epoch"] == 1 and "resumed" not in extra and extra["selected_on"] == "val_map"
    assert straight["resumed"] is False
    val = [h["val_map"] for h in extra["val_map_history"]]
    assert [h["epoch"] for h in extra["val_map_history"]] == [0, 1] and extra["val_map"] == max(val)
    assert extra["selected_epoch"] == val.index(max(val))
    last = torch.load(sorted((tmp_path / "straight" / "models" / "ckpt").glob("ckpt_*.pt"))[-1], weights_only=True)
    assert last["state"]["best"]["epoch"] == extra["selected_epoch"]
    for k, v in model.state_dict().items():  # the selected epoch's weights, not the last epoch's
        assert torch.equal(v, last["state"]["best"]["weights"][k]), k
    rows = straight["history"]
    assert len(rows) == 2 and all(r["pseudo_num_clusters"] >= 1 and 0 <= r["pseudo_outlier_ratio"] <= 1 for r in rows)
    assert all(0 <= r["pseudo_nmi"] <= 1 and -1 <= r["pseudo_ari"] <= 1 and r["loss"] > 0 for r in rows)
    train_dir = tmp_path / "straight" / "results" / "train"
    assert json.loads((train_dir / "summary.json").read_text())["selected_epoch"] == extra["selected_epoch"]
    logged = json.loads((train_dir / "metrics.json").read_text())
    assert {"loss", "pseudo", "val"} <= set(logged) and {"mAP", "R1"} <= set(logged["val"])
    assert "busy_seconds" in json.loads((train_dir / "timing.json").read_text())

    killed = _run(toy, tmp_path / "resumed", cfg=_cfg(iters_per_epoch=2), stop_after_iters=3)  # inside epoch 1
    assert killed == {"stopped_early": True, "iterations": 3}
    straight2 = _run(toy, tmp_path / "straight2", cfg=_cfg(iters_per_epoch=2))
    resumed = _run(toy, tmp_path / "resumed", cfg=_cfg(iters_per_epoch=2))
    assert resumed["resumed"] is True and resumed["history"] == straight2["history"]
    a = load_encoder(tmp_path / "straight2" / "models" / "encoder.pt")[0]
    b, _ = load_encoder(tmp_path / "resumed" / "models" / "encoder.pt")
    for (k, v1), v2 in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v1, v2), k
    same = [(tmp_path / r / "models" / "encoder.pt").read_bytes() for r in ("straight2", "resumed")]
    assert same[0] == same[1]  # a killed-and-resumed run gives the very same file: nothing downstream reruns
    loss_rows = (tmp_path / "resumed" / "results" / "train" / "plots" / "metrics" / "loss" / "loss.tsv").read_text()
    assert len(loss_rows.strip().splitlines()) == 1 + 2  # header + one row per epoch, none duplicated


def test_without_validation_the_last_epoch_is_kept(toy, tmp_path):
    summary = _run(toy, tmp_path, val=False, cfg=_cfg(epochs=1))
    assert summary["selected_on"] == "last_epoch" and summary["selected_epoch"] == 0


def test_zero_clusters_is_a_clear_error(toy, tmp_path):
    with pytest.raises(GenreidError, match="no cluster.*min_samples 500"):
        _run(toy, tmp_path, cfg=_cfg(cluster={"k1": 10, "k2": 3, "min_samples": 500}))


def test_a_diverging_lr_says_lower_the_lr(toy, tmp_path):
    with pytest.raises(TrainingDiverged, match="lower warmup.lr"):
        _run(toy, tmp_path, cfg=_cfg(lr=1e12, epochs=3))
    assert not (tmp_path / "models" / "encoder.pt").exists()


def test_batch_must_split_into_pk_groups(toy, tmp_path):
    with pytest.raises(ConfigError, match="num_instances"):
        _run(toy, tmp_path, cfg=_cfg(batch_size=18))


def test_stage_runs_from_params_and_refuses_uda(tmp_path, monkeypatch, make_prepared):
    spec = importlib.util.spec_from_file_location("warmup_stage", STAGE)
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    make_prepared(tmp_path / "data" / "prepared" / "synthetic", train_ids=6, val_ids=3)
    tree = resolve_recipe(RECIPE)
    tree["data"]["root"] = str(tmp_path / "data")
    tree["warmup"].update(epochs=1, iters_per_epoch=1, batch_size=8, num_instances=4)
    tree["warmup"]["cluster"].update(k1=8, k2=3)
    params = tmp_path / "params.yaml"
    params.write_text(dump_yaml(tree))
    monkeypatch.chdir(tmp_path)
    assert stage.main(["--dataset", "synthetic", "--params", str(params)]) == 0
    _, extra = load_encoder(tmp_path / "models" / "synthetic" / "baseline" / "encoder.pt")
    assert extra["epochs"] == 1 and extra["selected_on"] == "val_map"
    resolved = yaml.safe_load((tmp_path / "results" / "synthetic" / "baseline" / "train" /
                               "config.resolved.yaml").read_text())
    assert resolved["warmup"]["iters_per_epoch"] == 1
    tree["warmup"]["source_dataset"] = "market1501"
    params.write_text(dump_yaml(tree))
    assert stage.main(["--dataset", "synthetic", "--params", str(params)]) == 2
    assert (tmp_path / "models" / "synthetic" / "baseline" / "ckpt").is_dir()


def test_augment_batch_draws_per_image_and_keeps_shape():
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


def test_runtime_activation_checkpointing_is_honoured_and_changes_no_weights(toy, tmp_path, spy_amp_modules):
    """runtime.activation_checkpointing reaches the warm-up's AmpContext; same weights."""
    from genreid.engine.recompute import checkpointed_blocks
    from genreid.models.id_encoder import load_encoder

    built = spy_amp_modules()
    for flag in (False, True):
        train_warmup(toy["train"], None, _cfg(epochs=1), MODEL,
                     RunContext(seed=1, height=32, width=16, model_dir=tmp_path / str(flag) / "models",
                                results_dir=tmp_path / str(flag) / "results",
                                runtime=RuntimeConfig(device="cpu", activation_checkpointing=flag)))
    assert sum(checkpointed_blocks(m) for f, m in built if f) > 0
    assert not any(checkpointed_blocks(m) for f, m in built if not f)
    plain = load_encoder(tmp_path / "False" / "models" / "encoder.pt")[0].state_dict()
    ckpt = load_encoder(tmp_path / "True" / "models" / "encoder.pt")[0].state_dict()
    for k, v in plain.items():
        torch.testing.assert_close(ckpt[k], v, rtol=1e-5, atol=1e-6, msg=k)

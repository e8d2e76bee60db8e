"""Stage-3 trainer on the toy dataset: outputs and selection record, exact resume, NaN stop, every
mixing ablation, degenerate clustering stops with a clear message, no validation split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genreid.config.schema import RuntimeConfig
from genreid.engine.amp import AmpContext
from genreid.engine.batches import image_dataset
from genreid.engine.context import RunContext
from genreid.engine.dist import DistInfo
from genreid.errors import ConfigError, TrainingDiverged
from genreid.gan.nets import GanNets
from genreid.joint.contrastive import StepInputs
from genreid.joint.iteration import JointBatch, Optimisers
from genreid.joint.run import JointInputs, train_joint
from genreid.models.generator import build_generator
from genreid.models.id_encoder import build_encoder, load_encoder
from genreid.registry import method_spec

CLUSTER = {"k1": 6, "k2": 2, "min_samples": 2}




def _run(toy, out, cfg, method="gcl_plus", val=True, **kw):
    inputs = JointInputs(encoder=toy["encoder"], generator=toy["generator"], renders=toy["render_dir"])
    ctx = RunContext(seed=1, height=toy["height"], width=toy["width"], model_dir=out / "models",
                     results_dir=out / "results", runtime=RuntimeConfig(device="cpu"), **kw)
    return train_joint(toy["df"], toy["val_df"] if val else None, inputs, cfg, method, ctx)


def test_gcl_trains_the_encoder_and_records_the_selection(joint_cfg, gan_toy, tmp_path):
    summary = _run(gan_toy, tmp_path, joint_cfg(), "gcl")
    enc, extra = load_encoder(tmp_path / "models" / "encoder.pt")
    assert extra["method"] == "gcl" and extra["last_epoch"] == 1 and extra["selected_epoch"] in (0, 1)
    assert extra["selected_on"] == "val_map" and summary["resumed"] is False and "resumed" not in extra
    history = summary["history"]
    assert [h["epoch"] for h in history] == [-1, 0, 1]
    assert history[1]["pseudo_num_clusters"] >= 2 and "pseudo_nmi" in history[1]
    assert history[1]["lr_factor"] == 1.0 and history[2]["lr_factor"] == pytest.approx(0.1)
    start = load_encoder(gan_toy["encoder"])[0].state_dict()
    assert any(not torch.equal(start[k], v) for k, v in enc.state_dict().items())
    saved = json.loads((tmp_path / "results" / "train" / "summary.json").read_text())
    assert saved["iterations"] == 6 and summary["images_per_s"] > 0
    assert (tmp_path / "results" / "train" / "metrics.json").is_file()  # dvclive summary for the report


def test_gcl_plus_resume_after_kill_is_exact(joint_cfg, gan_toy, tmp_path):
    cfg = joint_cfg(selection="last")
    _run(gan_toy, tmp_path / "straight", cfg)
    killed = _run(gan_toy, tmp_path / "resumed", cfg, stop_after_iters=4)  # mid-epoch 1, after a re-clustering
    assert killed["stopped_early"]
    assert _run(gan_toy, tmp_path / "resumed", cfg)["resumed"] is True
    a = load_encoder(tmp_path / "straight" / "models" / "encoder.pt")[0].state_dict()
    b = load_encoder(tmp_path / "resumed" / "models" / "encoder.pt")[0].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_without_a_validation_split_it_trains_on_everything_and_keeps_the_last_epoch(joint_cfg, gan_toy, tmp_path):
    summary = _run(gan_toy, tmp_path, joint_cfg(), val=False)
    assert summary["selected_on"] == "last_epoch" and summary["selected_epoch"] == 1
    assert [h["epoch"] for h in summary["history"]] == [0, 1] and "val_mAP" not in summary["history"][0]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(joint_cfg, gan_toy, tmp_path):
    _run(gan_toy, tmp_path, joint_cfg(epochs=1))
    before = sorted((tmp_path / "models" / "ckpt").glob("ckpt_*.pt"))
    with pytest.raises(TrainingDiverged, match="became (nan|inf)"):  # a weight validation would refuse
        _run(gan_toy, tmp_path, joint_cfg(epochs=2).model_copy(update={"vi_weight": float("inf")}))
    assert sorted((tmp_path / "models" / "ckpt").glob("ckpt_*.pt")) == before


def test_unknown_method_is_a_clear_error(joint_cfg):
    with pytest.raises(ConfigError, match="not a stage-3 method"):
        method_spec("simclr")


@pytest.mark.parametrize("mixup", ["d_mixup", "mixup", "f_mixup", "none"])
def test_every_mixing_variant_runs_one_iteration(joint_cfg, mixup, tiny_widths, labelled_method):
    torch.manual_seed(0)
    enc = build_encoder("resnet18", "none", "avg", 8, 1, 4)
    nets = GanNets(enc, *build_generator(tiny_widths, 512, 4))
    opts = Optimisers(torch.optim.Adam(nets.generator_parameters()), torch.optim.Adam(nets.discriminator.parameters()),
                      torch.optim.SGD(enc.parameters(), lr=0.1))
    cfg = joint_cfg(num_negatives=4, gcl_plus={"mixup": mixup})
    method = labelled_method("gcl_plus", cfg, nets, opts)
    memory, labels = method.memory, method.memory.labels
    idx = torch.tensor([0, 1, 3, 6])
    before = memory.features.clone()
    w0 = enc.fc.weight.detach().clone()
    batch = JointBatch(torch.randn(4, 3, 32, 16), torch.randn(4, 1, 32, 16), torch.randn(4, 1, 32, 16), idx,
                       labels[idx])
    parts = method.joint_iteration(batch, "t")
    assert ("proto_soft" in parts) == (mixup != "none") and "proto_hard" in parts
    assert parts["d_total"] > 0 and np.isfinite(parts["total"])
    assert not torch.equal(enc.fc.weight, w0)  # E_id stepped
    changed = (memory.features != before).any(1)
    assert changed[idx].all() and not changed[[2, 4, 5, 7, 8, 9, 10, 11]].any()


def _clustering_step(cfg, dataset):
    """A GCL+ step with an encoder only and a random memory: enough to call its clustering."""
    enc = build_encoder("resnet18", "none", "avg", 4, 1, 4)
    step = method_spec("gcl_plus").cls(cfg, StepInputs(nets=GanNets(enc, None, None, None), opts=None, dataset=dataset,
                                                       info=DistInfo(), amp=AmpContext("cpu"), seed=1,
                                                       true_ids=np.arange(len(dataset)),
                                                       camids=np.zeros(len(dataset), dtype=int)))
    step.memory.initialise(torch.randn(len(dataset), 4))
    return step


def test_collapsed_clustering_stops_with_a_clear_message(joint_cfg, gan_toy):
    cfg = joint_cfg(gcl_plus={"cluster": {**CLUSTER, "eps_rule": "fixed", "eps": 1e-6, "min_samples": 4}})
    dataset = image_dataset(gan_toy["df"], gan_toy["height"], gan_toy["width"])
    step = _clustering_step(cfg, dataset)
    with pytest.raises(TrainingDiverged, match="(?s)fewer than one batch.*train.gcl_plus.cluster.eps"):
        step._pseudo_labels(0)


def test_a_batch_larger_than_the_training_set_blames_the_batch_size_not_eps(joint_cfg, gan_toy):
    dataset = image_dataset(gan_toy["df"], gan_toy["height"], gan_toy["width"])
    cfg = joint_cfg(batch_size=len(dataset) + 4)
    step = _clustering_step(cfg, dataset)
    with pytest.raises(TrainingDiverged) as err:
        step._pseudo_labels(0)
    text = str(err.value)
    assert f"train.batch_size {len(dataset) + 4} is larger than the whole training set" in text and "eps" not in text
    assert f"lower train.batch_size to at most {len(dataset)}" in text


def test_gd_lr_step_false_keeps_the_generator_lr_while_e_id_steps(joint_cfg, gan_toy, tmp_path):
    _run(gan_toy, tmp_path, joint_cfg(gd_lr_step=False, epochs=2, step_epoch=1))
    last = sorted((tmp_path / "models" / "ckpt").glob("ckpt_*.pt"))[-1]
    state = torch.load(last, weights_only=True)["state"]
    assert state["opt_g"]["param_groups"][0]["lr"] == 1e-4 and state["opt_d"]["param_groups"][0]["lr"] == 1e-4
    assert state["opt_id"]["param_groups"][0]["lr"] == pytest.approx(3.5e-5)


def test_stage_three_resumes_stage_two_adam_moments_unless_fresh(joint_cfg, gan_toy, tiny_widths, tmp_path):
    from genreid.config.sections.gan import PretrainConfig
    from genreid.pretrain.run import pretrain_generator

    pretrain_generator(gan_toy["df"], gan_toy["render_dir"], gan_toy["encoder"],
                       PretrainConfig(epochs=1, batch_size=4, iters_per_epoch=2), tiny_widths,
                       RunContext(seed=1, height=32, width=16, model_dir=tmp_path / "pre",
                                  results_dir=tmp_path / "pre_results", runtime=RuntimeConfig(device="cpu")))
    stage2 = torch.load(tmp_path / "pre" / "generator.pt", weights_only=True)["optimisers"]
    assert stage2["g"]["state"][0]["step"] == 2  # two Adam steps were taken
    toy = {**gan_toy, "generator": tmp_path / "pre" / "generator.pt"}
    for mode, first_step in (("resume", 3), ("fresh", 1)):
        _run(toy, tmp_path / mode, joint_cfg(gan_optimizer=mode, epochs=1, checkpoint_every_iters=1),
             stop_after_iters=1)
        ckpt = torch.load(sorted((tmp_path / mode / "models" / "ckpt").glob("ckpt_*.pt"))[0], weights_only=True)
        assert ckpt["state"]["opt_g"]["state"][0]["step"] == first_step, mode


def test_stage_three_pooling_follows_the_warmup_unless_set(joint_cfg, gan_toy, tmp_path):
    from genreid.models.layers import GeneralizedMeanPooling

    _run(gan_toy, tmp_path / "avg", joint_cfg(pooling="gem", epochs=1, iters_per_epoch=1))
    enc, _ = load_encoder(tmp_path / "avg" / "models" / "encoder.pt")
    assert enc.arch["pooling"] == "gem" and isinstance(enc.pool, GeneralizedMeanPooling)
    _run(gan_toy, tmp_path / "kept", joint_cfg(epochs=1, iters_per_epoch=1))
    assert load_encoder(tmp_path / "kept" / "models" / "encoder.pt")[0].arch["pooling"] == "avg"  # the toy's

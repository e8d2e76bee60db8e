"""Stage-3 control arms: they train without a generator (no generator.pt, renders or G/D optimisers),
control_aug's positive view is a seeded augmentation, control_none keeps only the loss's original-view
term, a killed-and-resumed control run is exact, and the method names are accepted everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genreid.config.schema import RuntimeConfig
from genreid.config.sections.evaluation import EvalConfig
from genreid.config.sections.gan import ControlAugConfig, TrainConfig
from genreid.engine.context import RunContext
from genreid.joint.arms.control_aug import ControlAug
from genreid.joint.arms.control_none import ControlNone
from genreid.joint.augment import augment, augmented_view, draw_augmentation, pad_pixels
from genreid.joint.iteration import EncoderNets, build_optimisers
from genreid.joint.run import JointInputs, train_joint
from genreid.losses.view_invariant import ViewInvariantSettings, view_invariant_loss
from genreid.memory.instance_memory import InstanceMemory
from genreid.models.id_encoder import build_encoder, load_encoder
from genreid.registry import method_spec

CONTROLS = ["control_aug", "control_none"]


def _run(toy, out, cfg, method, **kw):
    """No generator.pt and no renders exist at these paths: a control must never open them."""
    inputs = JointInputs(encoder=toy["encoder"], generator=out / "missing_generator.pt", renders=out / "no_renders")
    ctx = RunContext(seed=1, height=toy["height"], width=toy["width"], model_dir=out / "models",
                     results_dir=out / "results", runtime=RuntimeConfig(device="cpu"), **kw)
    return train_joint(toy["df"], toy["val_df"], inputs, cfg, method, ctx)


@pytest.mark.parametrize("method", CONTROLS)
def test_control_trains_the_encoder_without_a_generator(joint_cfg, method, gan_toy, tmp_path):
    summary = _run(gan_toy, tmp_path, joint_cfg(), method)
    assert not (tmp_path / "missing_generator.pt").exists() and not (tmp_path / "no_renders").exists()
    enc, extra = load_encoder(tmp_path / "models" / "encoder.pt")
    assert extra["method"] == method and extra["last_epoch"] == 1
    history = summary["history"]
    assert [h["epoch"] for h in history] == [-1, 0, 1] and history[1]["pseudo_num_clusters"] >= 2
    assert history[2]["lr_factor"] == pytest.approx(0.1)  # E_id's schedule as in GCL
    start = load_encoder(gan_toy["encoder"])[0].state_dict()
    assert any(not torch.equal(start[k], v) for k, v in enc.state_dict().items())
    ckpt = torch.load(sorted((tmp_path / "models" / "ckpt").glob("ckpt_*.pt"))[-1], weights_only=True)["state"]
    assert "opt_id" in ckpt and "memory" in ckpt
    assert not {"opt_g", "opt_d", "str_encoder", "decoder", "discriminator"} & set(ckpt)


@pytest.mark.parametrize("method", CONTROLS)
def test_control_resume_after_kill_is_exact(joint_cfg, method, gan_toy, tmp_path):
    cfg = joint_cfg(selection="last")
    _run(gan_toy, tmp_path / "straight", cfg, method)
    assert _run(gan_toy, tmp_path / "resumed", cfg, method, stop_after_iters=4)["stopped_early"]
    assert _run(gan_toy, tmp_path / "resumed", cfg, method)["resumed"] is True
    a = load_encoder(tmp_path / "straight" / "models" / "encoder.pt")[0].state_dict()
    b = load_encoder(tmp_path / "resumed" / "models" / "encoder.pt")[0].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _memory() -> tuple[InstanceMemory, torch.Tensor]:
    torch.manual_seed(0)
    memory = InstanceMemory(12, 8)
    memory.initialise(torch.randn(12, 8))
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1, -1])
    memory.set_labels(labels)
    return memory, labels


@pytest.mark.parametrize("method", CONTROLS)
def test_one_contrastive_iteration_steps_e_id_and_the_batch_slots(joint_cfg, method, labelled_method):
    torch.manual_seed(0)
    enc = build_encoder("resnet18", "none", "avg", 8, 1, 4)
    cfg = joint_cfg(num_negatives=4)
    opts = build_optimisers(EncoderNets(enc), cfg)
    assert opts.g is None and opts.d is None and list(opts.named()) == ["id"]
    arm = labelled_method(method, cfg, EncoderNets(enc), opts)
    memory = arm.memory
    idx = torch.tensor([0, 1, 3, 6])
    before, w0 = memory.features.clone(), enc.fc.weight.detach().clone()
    parts = arm.iteration(torch.randn(4, 3, 32, 16), idx, "t")
    assert np.isfinite(parts["total"]) and parts["total"] > 0
    assert ("vi_self" in parts) == (method == "control_aug") and "vi_orig_cluster" in parts
    assert not torch.equal(enc.fc.weight, w0)
    changed = (memory.features != before).any(1)
    assert changed[idx].all() and not changed[[2, 4, 5, 7, 8, 9, 10, 11]].any()


def test_control_none_loss_is_the_original_view_term_alone():
    memory, _ = _memory()
    f, idx = torch.randn(4, 8), torch.tensor([0, 1, 3, 6])
    g = torch.Generator().manual_seed(3)
    loss, parts = view_invariant_loss(f, None, idx, memory, ViewInvariantSettings(5, 0.05, "f_nv"), generator=g)
    assert set(parts) == {"vi_orig_cluster"} and float(parts["vi_orig_cluster"]) == pytest.approx(float(loss))
    g = torch.Generator().manual_seed(3)  # by hand: the same positive and negatives, scored with f
    p = memory.sample_positives(idx, g)
    neg = memory.sample_negatives(idx, 5, g)
    sim = torch.nn.functional.normalize(f, dim=1) @ memory.features.t()
    logits = torch.cat([sim.gather(1, p[:, None]), sim.gather(1, neg)], 1) / 0.05
    expected = torch.nn.functional.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_augmented_view_differs_from_the_input_and_is_seeded():
    x = torch.randn(6, 3, 32, 16)
    cfg = ControlAugConfig()
    torch.manual_seed(5)
    a = augmented_view(x, cfg)
    torch.manual_seed(5)
    b = augmented_view(x, cfg)
    torch.manual_seed(6)
    c = augmented_view(x, cfg)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and (a - x).abs().amax((1, 2, 3)).min() > 0.05  # every image changed
    assert torch.equal(x, x.clone())


def test_each_augmentation_does_what_its_keys_say():
    x = torch.rand(2, 3, 20, 10)  # normalised space; only shapes and positions matter here
    off = ControlAugConfig(brightness=0, contrast=0, saturation=0, flip_p=1.0, pad_fraction=0, erase_p=0)
    d = draw_augmentation(2, 20, 10, off)
    img = augment(x, d, off)
    ref = augment(x, draw_augmentation(2, 20, 10, off.model_copy(update={"flip_p": 0.0})), off)
    assert torch.allclose(img, ref.flip(3), atol=1e-5)  # flip only (jitter factors are exactly 1)
    erase = off.model_copy(update={"flip_p": 0.0, "erase_p": 1.0})
    d = draw_augmentation(2, 20, 10, erase)
    assert d.erase.all() and ((d.eh * d.ew) >= 0.02 * 200 * 0.5).all() and (d.ey + d.eh <= 20).all()
    out = augment(x, d, erase)
    y, x0, h, w = (int(v[0]) for v in (d.ey, d.ex, d.eh, d.ew))
    assert (out[0, :, y:y + h, x0:x0 + w] == 0).all()
    assert pad_pixels(ControlAugConfig(), 128) == 13 and pad_pixels(ControlAugConfig(), 10) == 1


def test_control_methods_are_registered_with_gcl_clustering(joint_cfg, labelled_method):
    cfg = joint_cfg()
    aug, none = method_spec("control_aug"), method_spec("control_none")
    assert aug.cls is ControlAug and none.cls is ControlNone
    assert not aug.needs_generator and not none.needs_generator and method_spec("gcl").needs_generator
    enc = build_encoder("resnet18", "none", "avg", 8, 1, 4)
    arm = labelled_method("control_aug", cfg, EncoderNets(enc), build_optimisers(EncoderNets(enc), cfg))
    assert arm.cluster is cfg.gcl.cluster and arm.cluster_key == "train.gcl.cluster"
    assert TrainConfig(methods=["control_aug", "control_none"]).methods == ["control_aug", "control_none"]
    assert EvalConfig(methods=["control_none"]).methods == ["control_none"]
    assert TrainConfig().methods == ["gcl", "gcl_plus"]
    with pytest.raises(ValueError, match="erase_min_area"):
        ControlAugConfig(erase_min_area=0.5, erase_max_area=0.1)

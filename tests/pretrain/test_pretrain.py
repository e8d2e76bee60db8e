"""Stage-2 trainer on the toy dataset: outputs, frozen E_id, exact resume after a kill, NaN stop."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from genreid.config.schema import RuntimeConfig
from genreid.config.sections.gan import PretrainConfig
from genreid.engine.batches import image_dataset
from genreid.engine.context import RunContext
from genreid.errors import CheckpointError, TrainingDiverged
from genreid.gan.codes import appearance_codes
from genreid.gan.sheet import sheet_rows
from genreid.models.generator import load_generator
from genreid.models.id_encoder import load_encoder
from genreid.pretrain.run import pretrain_generator


def _cfg(**kw) -> PretrainConfig:
    base = dict(epochs=2, batch_size=4, iters_per_epoch=3, checkpoint_every_iters=2, sheet_rows=2)
    base.update(kw)
    return PretrainConfig(**base)


def _run(toy, out, widths, cfg=None, **kw):
    ctx = RunContext(seed=1, height=toy["height"], width=toy["width"], model_dir=out / "models",
                     results_dir=out / "results", runtime=RuntimeConfig(device="cpu"), **kw)
    return pretrain_generator(toy["df"], toy["render_dir"], toy["encoder"], cfg or _cfg(), widths, ctx)


def test_pretrain_writes_generator_sheet_and_metrics_and_keeps_encoder_frozen(gan_toy, tiny_widths, tmp_path):
    before = load_encoder(gan_toy["encoder"])[0].state_dict()
    summary = _run(gan_toy, tmp_path, tiny_widths)
    assert summary["iterations"] == 6 and summary["images_per_s"] > 0
    e_str, dec, dis, extra = load_generator(tmp_path / "models" / "generator.pt")
    assert extra["iterations"] == 6 and dec.arch["stripe_dim"] == 512
    with Image.open(tmp_path / "results" / "views.png") as im:  # 2 persons x 2 rows, 11 columns
        assert im.size == (3 * (11 * 18 + 2), 3 * (4 * 34 + 2) + 18)  # + the band of column labels
    metrics = json.loads((tmp_path / "results" / "train" / "summary.json").read_text())
    assert len(metrics["history"]) == 2 and all(v == v for v in metrics["final"].values())
    assert sorted(p.name for p in (tmp_path / "results" / "train" / "sheets").glob("*.png")) == [
        "views_epoch_001.png", "views_epoch_002.png"]
    after = load_encoder(gan_toy["encoder"])[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_pretrain_resume_after_kill_is_exact(gan_toy, tiny_widths, tmp_path):
    _run(gan_toy, tmp_path / "straight", tiny_widths)
    killed = _run(gan_toy, tmp_path / "resumed", tiny_widths, stop_after_iters=4)  # dies mid-epoch 2
    assert killed["stopped_early"] and killed["iterations"] == 4
    summary = _run(gan_toy, tmp_path / "resumed", tiny_widths)
    assert summary["resumed"] and summary["iterations"] == 6
    a = load_generator(tmp_path / "straight" / "models" / "generator.pt")
    b = load_generator(tmp_path / "resumed" / "models" / "generator.pt")
    for m1, m2 in zip(a[:3], b[:3]):
        for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
            assert torch.equal(v1, v2), k


def test_pretrain_stops_on_nan_and_keeps_last_good_checkpoint(gan_toy, tiny_widths, tmp_path):
    _run(gan_toy, tmp_path, tiny_widths, _cfg(epochs=1))
    ckpts = sorted((tmp_path / "models" / "ckpt").glob("ckpt_*.pt"))
    assert ckpts
    bad = {"rec": float("nan"), "cyc": 5.0, "code": 5.0, "cyc_code": 5.0, "adv": 1.0, "r1": 0.01}
    with pytest.raises(TrainingDiverged, match="became nan|became inf"):
        _run(gan_toy, tmp_path, tiny_widths, _cfg(epochs=2).model_copy(update={"weights": _Weights(bad)}))
    assert sorted((tmp_path / "models" / "ckpt").glob("ckpt_*.pt")) == ckpts


class _Weights:
    """Loss weights that bypass validation (a NaN weight is the quickest way to a NaN loss)."""

    def __init__(self, values: dict[str, float]):
        self.values = values

    def model_dump(self) -> dict[str, float]:
        return dict(self.values)


def test_pretrain_refuses_a_mismatched_checkpoint(gan_toy, tiny_widths, tmp_path):
    _run(gan_toy, tmp_path, tiny_widths, stop_after_iters=1)
    with pytest.raises(CheckpointError, match="does not match"):
        _run(gan_toy, tmp_path, tiny_widths.model_copy(update={"str_out": 16}))


def test_sheet_rows_pick_distinct_identities():
    assert sheet_rows([0, 0, 1, 1, 2, 2, 3], 3) == [0, 4, 6]
    assert sheet_rows([5, 5], 4) == [0]


def test_recon_warmup_trains_only_the_reconstruction(gan_toy, tiny_widths, tmp_path):
    summary = _run(gan_toy, tmp_path, tiny_widths, _cfg(epochs=1, recon_warmup_iters=3, recon_warmup_lr=1e-3,
                                                        checkpoint_every_iters=2, adain_scale_offset=1.0))
    assert set(summary["final"]) == {"epoch", "iterations", "rec", "g_total", "lr_factor"}
    _, dec, dis, _ = load_generator(tmp_path / "models" / "generator.pt")
    assert dec.arch["scale_offset"] == 1.0
    early = torch.load(tmp_path / "models" / "ckpt" / "ckpt_000000002.pt", weights_only=True)
    assert early["state"]["opt_g"]["param_groups"][0]["lr"] == 1e-3
    for k, v in dis.state_dict().items():  # D is never stepped during the warm start
        assert torch.equal(v, early["state"]["discriminator"][k]), k


def test_code_norm_statistics_are_fixed_from_the_training_codes_and_survive_resume(gan_toy, tiny_widths, tmp_path):
    enc = load_encoder(gan_toy["encoder"])[0].eval()
    codes = appearance_codes(enc, image_dataset(gan_toy["df"], gan_toy["height"], gan_toy["width"]), "cpu")
    assert codes.shape == (len(gan_toy["df"]), enc.appearance_dim)
    cfg = _cfg(code_norm=True)
    _run(gan_toy, tmp_path / "straight", tiny_widths, cfg)
    _run(gan_toy, tmp_path / "resumed", tiny_widths, cfg, stop_after_iters=4)
    _run(gan_toy, tmp_path / "resumed", tiny_widths, cfg)
    for run in ("straight", "resumed"):
        dec = load_generator(tmp_path / run / "models" / "generator.pt")[1]
        assert dec.arch["code_norm"] is True
        torch.testing.assert_close(dec.code_mean, codes.mean(0))
        torch.testing.assert_close(dec.code_std, codes.std(0) + 1e-4)


def test_generator_diagnostics_script_on_a_trained_toy(gan_toy, tiny_widths, tmp_path):
    path = Path(__file__).resolve().parents[2] / "scripts" / "diagnose_generator.py"
    spec = importlib.util.spec_from_file_location("diagnose_generator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _run(gan_toy, tmp_path, tiny_widths)
    report = module.diagnose(gan_toy["df"], gan_toy["render_dir"], gan_toy["encoder"],
                             tmp_path / "models" / "generator.pt", gan_toy["height"], gan_toy["width"],
                             [0, 45, 90, 135, 180, 225, 270, 315], n_images=16)
    assert report["images"] == 16 and len(report["colour_r2_upper_rgb_lower_rgb"]) == 6
    assert all(r <= 1.0 for r in report["colour_r2_upper_rgb_lower_rgb"])
    assert report["real_pair_l1"] > 0 and report["mean_image_l1"] > 0
    assert 0 < report["reconstruction_l1"] < 10 and report["appearance_effect_l1"] >= 0


def test_runtime_activation_checkpointing_is_honoured_and_changes_no_weights(gan_toy, tiny_widths, tmp_path,
                                                                            spy_amp_modules):
    """runtime.activation_checkpointing reaches the stage's AmpContext and the weights agree."""
    from genreid.engine.recompute import checkpointed_blocks

    built = spy_amp_modules()
    for flag in (False, True):
        ctx = RunContext(seed=1, height=gan_toy["height"], width=gan_toy["width"],
                         model_dir=tmp_path / str(flag) / "models", results_dir=tmp_path / str(flag) / "results",
                         runtime=RuntimeConfig(device="cpu", activation_checkpointing=flag))
        pretrain_generator(gan_toy["df"], gan_toy["render_dir"], gan_toy["encoder"], _cfg(epochs=1), tiny_widths, ctx)
    assert {f for f, _ in built} == {False, True}
    assert sum(checkpointed_blocks(m) for f, m in built if f) > 0
    assert not any(checkpointed_blocks(m) for f, m in built if not f)
    plain = load_generator(tmp_path / "False" / "models" / "generator.pt")
    ckpt = load_generator(tmp_path / "True" / "models" / "generator.pt")
    for m1, m2 in zip(plain[:3], ckpt[:3]):
        for k, v in m1.state_dict().items():
            torch.testing.assert_close(m2.state_dict()[k], v, rtol=1e-5, atol=1e-6, msg=k)

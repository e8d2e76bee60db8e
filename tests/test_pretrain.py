"""Stage-2 trainer on a toy dataset: outputs, frozen E_id, exact resume after a kill, NaN stop."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from gan_toy import make_toy

from genreid.errors import CheckpointError, TrainingDiverged
from genreid.models.generator import GeneratorWidths, load_generator
from genreid.models.id_encoder import load_encoder
from genreid.training.mesh_views import image_dataset
from genreid.training.pretrain import PretrainSettings, appearance_codes, pretrain_generator, sheet_rows

TINY = GeneratorWidths(str_channels=(4, 8, 8, 8), str_out=8, dec_channels=(8, 4), mlp_dim=8,
                       dis_channels=(4, 8), dis_scales=2, res_blocks=2)


def _settings(**kw) -> PretrainSettings:
    base = dict(epochs=2, batch_size=4, iters_per_epoch=3, checkpoint_every_iters=2, sheet_rows=2, log_every=100)
    base.update(kw)
    return PretrainSettings(**base)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy(tmp_path_factory.mktemp("toy"))


def _run(toy, out, widths=TINY, **kw):
    return pretrain_generator(toy["df"], toy["render_dir"], toy["encoder"], widths, toy["height"], toy["width"],
                              out / "models", out / "results", _settings(**kw.pop("settings", {})), **kw)


def test_pretrain_writes_generator_sheet_and_metrics_and_keeps_encoder_frozen(toy, tmp_path):
    before = load_encoder(toy["encoder"])[0].state_dict()
    summary = _run(toy, tmp_path)
    assert summary["iterations"] == 6 and summary["images_per_s"] > 0
    e_str, dec, dis, extra = load_generator(tmp_path / "models" / "generator.pt")
    assert extra["iterations"] == 6 and dec.arch["stripe_dim"] == 512
    sheet = tmp_path / "results" / "views.png"
    from PIL import Image
    with Image.open(sheet) as im:  # 2 persons x 2 rows, 11 columns (input, mesh, rec, 7 views, cycle)
        assert im.size == (3 * (11 * 18 + 2), 3 * (4 * 34 + 2))
    metrics = json.loads((tmp_path / "results" / "train" / "summary.json").read_text())
    assert len(metrics["history"]) == 2 and all(v == v for v in metrics["final"].values())
    assert list((tmp_path / "results" / "train" / "plots" / "images").glob("views_epoch_*.png"))
    after = load_encoder(toy["encoder"])[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_pretrain_resume_after_kill_is_exact(toy, tmp_path):
    _run(toy, tmp_path / "straight")
    killed = _run(toy, tmp_path / "resumed", stop_after_iters=4)  # dies mid-epoch 2
    assert killed["stopped_early"] and killed["iterations"] == 4
    summary = _run(toy, tmp_path / "resumed")
    assert summary["resumed"] and summary["iterations"] == 6
    a = load_generator(tmp_path / "straight" / "models" / "generator.pt")
    b = load_generator(tmp_path / "resumed" / "models" / "generator.pt")
    for m1, m2 in zip(a[:3], b[:3]):
        for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
            assert torch.equal(v1, v2), k


def test_pretrain_stops_on_nan_and_keeps_last_good_checkpoint(toy, tmp_path):
    _run(toy, tmp_path, settings={"epochs": 1})
    ckpts = sorted((tmp_path / "models" / "ckpt").glob("ckpt_*.pt"))
    assert ckpts
    with pytest.raises(TrainingDiverged, match="became nan|became inf"):
        _run(toy, tmp_path, settings={"epochs": 2, "weights": {"rec": float("nan"), "cyc": 5.0, "code": 5.0,
                                                                "cyc_code": 5.0, "adv": 1.0, "r1": 0.01}})
    assert sorted((tmp_path / "models" / "ckpt").glob("ckpt_*.pt")) == ckpts


def test_pretrain_refuses_a_mismatched_checkpoint(toy, tmp_path):
    _run(toy, tmp_path, stop_after_iters=1)
    wider = GeneratorWidths(str_channels=(4, 8, 8, 8), str_out=16, dec_channels=(8, 4), mlp_dim=8,
                            dis_channels=(4, 8), dis_scales=2, res_blocks=2)
    with pytest.raises(CheckpointError, match="does not match"):
        pretrain_generator(toy["df"], toy["render_dir"], toy["encoder"], wider, 32, 16, tmp_path / "models",
                           tmp_path / "results", _settings())


def test_sheet_rows_pick_distinct_identities():
    assert sheet_rows([0, 0, 1, 1, 2, 2, 3], 3) == [0, 4, 6]
    assert sheet_rows([5, 5], 4) == [0]


def test_recon_warmup_trains_only_the_reconstruction(toy, tmp_path):
    summary = _run(toy, tmp_path, replace(TINY, adain_scale_offset=1.0),
                   settings={"epochs": 1, "recon_warmup_iters": 3, "recon_warmup_lr": 1e-3,
                             "checkpoint_every_iters": 2})
    assert set(summary["final"]) == {"epoch", "iterations", "rec", "g_total"}
    _, dec, dis, _ = load_generator(tmp_path / "models" / "generator.pt")
    assert dec.arch["scale_offset"] == 1.0
    early = torch.load(tmp_path / "models" / "ckpt" / "ckpt_000000002.pt", weights_only=False)
    assert early["opt_g"]["param_groups"][0]["lr"] == 1e-3
    for k, v in dis.state_dict().items():  # D is never stepped during the warm start
        assert torch.equal(v, early["modules"]["discriminator"][k]), k


def test_code_norm_statistics_are_fixed_from_the_training_codes_and_survive_resume(toy, tmp_path):
    widths = replace(TINY, code_norm=True)
    enc = load_encoder(toy["encoder"])[0].eval()
    codes = appearance_codes(enc, image_dataset(toy["df"], toy["height"], toy["width"]), "cpu")
    assert codes.shape == (len(toy["df"]), enc.appearance_dim)
    _run(toy, tmp_path / "straight", widths)
    _run(toy, tmp_path / "resumed", widths, stop_after_iters=4)
    _run(toy, tmp_path / "resumed", widths)
    for run in ("straight", "resumed"):
        dec = load_generator(tmp_path / run / "models" / "generator.pt")[1]
        assert dec.arch["code_norm"] is True
        torch.testing.assert_close(dec.code_mean, codes.mean(0))
        torch.testing.assert_close(dec.code_std, codes.std(0) + 1e-4)


def test_generator_diagnostics_script_on_a_trained_toy(toy, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "diagnose_generator.py"
    spec = importlib.util.spec_from_file_location("diagnose_generator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _run(toy, tmp_path)
    report = module.diagnose(toy["df"], toy["render_dir"], toy["encoder"], tmp_path / "models" / "generator.pt",
                             toy["height"], toy["width"], [0, 45, 90, 135, 180, 225, 270, 315], n_images=16)
    assert report["images"] == 16 and len(report["colour_r2_upper_rgb_lower_rgb"]) == 6
    assert all(r <= 1.0 for r in report["colour_r2_upper_rgb_lower_rgb"])
    assert report["real_pair_l1"] > 0 and report["mean_image_l1"] > 0
    assert 0 < report["reconstruction_l1"] < 10 and report["appearance_effect_l1"] >= 0

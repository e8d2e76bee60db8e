"""Stage 1 as Cluster-Contrast published it (sampler, augmentation default, MSMT17 schedule), and
stage 1 taken from the authors' imported weights instead of trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genreid.config import load_config
from genreid.config.schema import RuntimeConfig
from genreid.config.sections.model import ModelConfig
from genreid.config.sections.warmup import WarmupConfig
from genreid.data.samplers import MultiGallerySampler
from genreid.engine.context import RunContext
from genreid.errors import ConfigError
from genreid.models.id_encoder import build_encoder, load_encoder, save_encoder
from genreid.warmup.batches import pk_batches
from genreid.warmup.run import train_warmup

PARAMS = Path(__file__).resolve().parents[2] / "params"


def test_multi_gallery_groups_are_an_anchor_plus_other_cameras():
    pids = np.array([0] * 6 + [1] * 3 + [2] * 4 + [-1] * 2)
    cams = np.array([0, 0, 1, 2, 3, 1, 0, 0, 0, 0, 1, 1, 1, 2, 2])
    order = list(iter(MultiGallerySampler(pids, cams, 4, seed=3)))
    groups = [order[i:i + 4] for i in range(0, len(order), 4)]
    assert len(groups) == 3 and sorted({int(pids[g[0]]) for g in groups}) == [0, 1, 2]  # one group per identity
    for g in groups:
        assert len({int(pids[i]) for i in g}) == 1 and -1 not in {int(pids[i]) for i in g}
        anchor_cam = cams[g[0]]
        if int(pids[g[0]]) == 0:  # 4+ images on other cameras: drawn without replacement, none on the anchor's
            assert all(cams[i] != anchor_cam for i in g[1:]) and len(set(g[1:])) == 3
        if int(pids[g[0]]) == 1:  # one camera only: the identity's other images
            assert set(g[1:]) <= {6, 7, 8} - {g[0]}
    again = list(iter(MultiGallerySampler(pids, cams, 4, seed=3)))
    assert again == order  # seeded


def test_the_sampler_is_a_key_and_both_fill_whole_batches():
    labels = np.repeat(np.arange(8), 4)
    cams = np.tile([0, 1, 2, 3], 8)
    for sampler in ("multi_gallery", "pk_cameras"):
        batches = pk_batches(labels, cams, 16, 4, seed=1, iterations=5, sampler=sampler)
        assert len(batches) == 5 and all(len(b) == 16 for b in batches)
        assert all(len(set(labels[b[i:i + 4]])) == 1 for b in batches for i in range(0, 16, 4))


def test_real_dataset_recipes_run_cluster_contrast_as_published():
    market, msmt = load_config(PARAMS / "market1501.yaml"), load_config(PARAMS / "msmt17.yaml")
    assert market.warmup.augment and market.warmup.sampler == "multi_gallery"
    assert market.warmup.iters_per_epoch == 200 and msmt.warmup.iters_per_epoch == 400
    assert market.mesh.body_model.endswith("SMPL_NEUTRAL.pkl") and not market.mesh.allow_procedural_body


def test_real_datasets_with_the_procedural_body_need_the_explicit_key(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(f"_base_: {PARAMS / 'market1501.yaml'}\nmesh:\n  body_model: procedural\n")
    with pytest.raises(ConfigError, match="allow_procedural_body"):
        load_config(params)
    params.write_text(f"_base_: {PARAMS / 'market1501.yaml'}\nmesh:\n  body_model: procedural\n"
                      "  allow_procedural_body: true\n")
    assert load_config(params).mesh.allow_procedural_body


def test_an_imported_encoder_replaces_training_and_is_marked(tmp_path):
    src = tmp_path / "authors" / "encoder.pt"
    model = build_encoder("resnet18", "none", "avg", 16, 1, 4)
    save_encoder(model, src, {"method": "authors_import", "source": "authors' stage-1 weights"})
    cfg = WarmupConfig(import_encoder=str(src))
    small = ModelConfig(backbone="resnet18", embedding_dim=16)
    ctx = RunContext(seed=1, height=32, width=16, model_dir=tmp_path / "models", results_dir=tmp_path / "results",
                     runtime=RuntimeConfig(device="cpu"))
    summary = train_warmup(None, None, cfg, small, ctx)
    enc, extra = load_encoder(tmp_path / "models" / "encoder.pt")
    assert extra["selected_on"] == "authors_weights" and extra["imported_from"] == str(src)
    assert summary["imported_sha256"] == extra["imported_sha256"] and len(extra["imported_sha256"]) == 64
    for k, v in model.state_dict().items():
        assert (enc.state_dict()[k] == v).all(), k
    with pytest.raises(ConfigError, match="import-authors"):
        train_warmup(None, None, WarmupConfig(import_encoder=str(tmp_path / "missing.pt")), ModelConfig(),
                     RunContext(seed=1, height=32, width=16, model_dir=tmp_path / "m2", results_dir=tmp_path / "r2",
                                runtime=RuntimeConfig(device="cpu")))

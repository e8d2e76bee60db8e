"""Bad inputs the reliability issue lists that no component test covers: each gives a specific
error naming the file or key and the fix, and nothing half-prepared is left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genreid.cluster import jaccard_distance
from genreid.data.prepare import PrepareOptions, prepare_dataset
from genreid.data.testing import make_market_tree
from genreid.errors import CheckpointError, DataError, GenreidError
from genreid.evaluation import evaluate_rank
from genreid.models.id_encoder import build_encoder, load_encoder, save_encoder


def _prepare(tree_root: Path, out: Path, **kw):
    args = dict(val_fraction=0.2, val_seed=0, verify="header", expected_counts="off", max_bad_images=0,
                progress=False)
    args.update(kw)
    return prepare_dataset("market1501", str(tree_root), out, PrepareOptions(**args))


@pytest.fixture
def market(tmp_path):
    return make_market_tree(tmp_path / "src").root


def test_degenerate_image_size_is_named(market, tmp_path):
    victim = sorted((market / "bounding_box_train").glob("0*.jpg"))[0]
    Image.new("RGB", (1, 1)).save(victim)
    with pytest.raises(DataError) as info:
        _prepare(market, tmp_path / "out")
    assert victim.name in str(info.value) and "1x1 pixels is too small" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_training_image_copied_into_query_is_leakage(market, tmp_path):
    src = sorted((market / "bounding_box_train").glob("0*.jpg"))[0]
    shutil.copy(src, market / "query" / src.name)
    with pytest.raises(DataError, match="identical content to training image"):
        _prepare(market, tmp_path / "out")


def test_empty_split_is_named(market, tmp_path):
    for p in (market / "query").glob("*.jpg"):
        p.unlink()
    with pytest.raises(DataError, match="split 'query' has no images"):
        _prepare(market, tmp_path / "out")


def test_single_camera_dataset(market, tmp_path):
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        for p in sorted((market / split).glob("*.jpg")):
            fields = p.name.split("_")
            fields[1] = "c1" + fields[1][2:]
            target = p.with_name("_".join(fields))
            if not target.exists():
                p.rename(target)
    with pytest.raises(DataError, match="no training identity appears in two cameras") as info:
        _prepare(market, tmp_path / "out")
    assert "data.val_fraction: 0" in str(info.value)
    # Evaluating single-camera data with the camera filter removes every true match: a clear error.
    d = np.random.default_rng(0).random((3, 5)).astype(np.float32)
    with pytest.raises(GenreidError, match="camera_filter"):
        evaluate_rank(d, np.array([1, 2, 3]), np.array([1, 2, 3, 4, 5]), np.zeros(3, int), np.zeros(5, int))
    ok = evaluate_rank(d, np.array([1, 2, 3]), np.array([1, 2, 3, 4, 5]), np.zeros(3, int), np.zeros(5, int),
                       camera_filter=False)
    assert ok.num_valid_queries == 3


def test_nan_features_are_refused_before_clustering():
    f = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    f[7, 3] = np.nan
    with pytest.raises(GenreidError, match=r"1 of 40 feature rows hold NaN/inf \(rows \[7\]"):
        jaccard_distance(f, k1=5, k2=2)


def test_nan_distances_are_refused_by_the_evaluator():
    d = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    d[1, 2] = np.nan
    with pytest.raises(GenreidError, match="NaN"):
        evaluate_rank(d, np.array([1, 2, 3]), np.array([1, 2, 3, 4]), np.zeros(3, int), np.ones(4, int))


def _small_encoder(backbone="resnet18", dim=16):
    torch.manual_seed(0)
    return build_encoder(backbone=backbone, pretrained="none", pooling="avg", embedding_dim=dim, last_stride=1,
                         stripes=4)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "encoder.pt"
    save_encoder(_small_encoder(dim=16), path, extra={})
    model, _ = load_encoder(path, map_location="cpu")
    assert model.embedding_dim == 16
    # Same file, keys edited (a checkpoint from other code): strict loading lists them.
    blob = torch.load(path, weights_only=False)
    sd = blob["state_dict"]
    sd["head.extra"] = torch.zeros(1)
    sd.pop(next(iter(sd)))
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="unexpected keys"):
        load_encoder(path, map_location="cpu")


def test_truncated_encoder_checkpoint_is_named(tmp_path):
    path = tmp_path / "encoder.pt"
    save_encoder(_small_encoder(), path, extra={})
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="encoder.pt"):
        load_encoder(path, map_location="cpu")

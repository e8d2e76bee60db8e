"""Ground-truth novel views: the angle-0 view is the photo, other angles overlay the structure renders.

Bags are part of the photo, not of the body model (genreid/synth/accessories.py): the mesh stage's
structure render of a bag carrier shows the body alone. So the silhouette IoU >= 0.9 is asserted for
people without a bag, and for bag carriers the structure render must lie inside the true silhouette
(the excess is the bag) with a looser IoU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genreid.body import load_body_model
from genreid.data.manifest import load_prepared
from genreid.data.true_views import load_true_views, write_true_views
from genreid.errors import DataError
from genreid.meshes.estimators import OracleEstimator
from genreid.meshes.stage import relative_paths
from genreid.meshes.views import render_views
from genreid.synth.appearance import ATTRIBUTE_NAMES
from genreid.synth.generator import _jpeg
from genreid.synth.ground_truth import load_ground_truth
from genreid.synth.novel_views import render_splits, render_true_views

ANGLES = [0, 45, 90, 135, 180, 225, 270, 315]
H, W = 128, 64


def _decode(jpeg: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> dict:
    """A tiny SynthReID at 128x64 (16 train images, half of them occluded) and the true views of its
    training images at every mesh angle."""
    from genreid.data.prepare import PrepareOptions, prepare_dataset

    out = tmp_path_factory.mktemp("views") / "prepared" / "synthetic"
    prepare_dataset("synthetic", {"seed": 0, "num_train_ids": 4, "num_test_ids": 2, "cameras_per_id": 2,
                                  "images_per_camera": 2, "num_distractors": 0, "height": H, "num_cameras": 2,
                                  "occlusion_prob": 0.5}, out, PrepareOptions(val_fraction=0.0, progress=False))
    table = load_prepared(out, splits=("train",))["train"]
    paths = relative_paths(table["path"].tolist(), out)
    views = render_true_views(out, paths, ANGLES, batch_size=6)  # other batches than the generator's 32
    gt = load_ground_truth(out / "ground_truth.npz")
    rows = gt.rows_of(paths)
    return {"dir": out, "paths": paths, "views": views, "gt": gt, "rows": rows, "table": table}


def test_angle_zero_is_the_photo_without_its_occluder(synth):
    views, gt, rows = synth["views"], synth["gt"], synth["rows"]
    occluded = gt.occluded[rows]
    assert 0 < occluded.sum() < len(rows)  # both kinds are checked
    for i, path in enumerate(synth["paths"]):
        stored = (synth["dir"] / path).read_bytes()
        again = _jpeg(views.images[i, 0], int(views.jpeg_quality[i]))
        if not occluded[i]:
            assert again == stored, path
        else:  # the occluder is gone; elsewhere the photo is the same up to JPEG error
            assert again != stored, path
            # JPEG (no chroma subsampling) codes 8x8 blocks independently: the blocks the occluder
            # does not touch decode to the very same pixels
            same = (_decode(again) == _decode(stored)).all(-1).reshape(H // 8, 8, W // 8, 8).all((1, 3))
            assert 0.4 <= same.mean() < 1.0, (path, same.mean())
    np.testing.assert_array_equal(views.masks[:, 0], gt.masks(synth["paths"]))


def test_other_angles_overlay_the_structure_renders(synth):
    views, gt, rows, paths = synth["views"], synth["gt"], synth["rows"], synth["paths"]
    oracle = OracleEstimator(synth["dir"] / "ground_truth.npz")
    structure = render_views(load_body_model("procedural"), oracle.estimate([], paths), ANGLES, H, W)
    bag = gt.attributes[rows, list(ATTRIBUTE_NAMES).index("bag")] > 0
    assert 0 < bag.sum() < len(rows)
    turned = np.zeros(len(paths), bool)
    for j, angle in enumerate(ANGLES):
        body, true = structure[angle] > 0, views.masks[:, j]
        inter, union = (body & true).sum((1, 2)), (body | true).sum((1, 2))
        iou, inside = inter / union, inter / body.sum((1, 2))
        assert iou[~bag].min() >= 0.9, (angle, iou[~bag])
        assert inside[bag].min() >= 0.99 and iou[bag].min() >= 0.8, (angle, inside[bag], iou[bag])
        if angle:
            turned |= (true != views.masks[:, 0]).mean((1, 2)) > 0.02  # the person really turned
    assert turned.all()


def test_background_is_unchanged_away_from_the_person(synth):
    from scipy.ndimage import distance_transform_edt

    views = synth["views"]
    for i in range(len(views)):
        # farther than 6 px from the person at every angle (blur and resampling spread its edges ~5 px)
        person = distance_transform_edt(~views.masks[i].any(0)) <= 6
        for j in range(len(ANGLES)):
            np.testing.assert_array_equal(views.images[i, j][~person], views.backgrounds[i][~person])
        assert (views.images[i][:, person].astype(int) != views.backgrounds[i][person]).any(-1).mean() > 0.3


def test_store_round_trip(synth, tmp_path):
    views, table = synth["views"], synth["table"]
    write_true_views(tmp_path, "train", views, table["pid"], table["camid"], generator_version=2)
    back = load_true_views(tmp_path, "train")
    assert back.paths == views.paths and back.angles == ANGLES
    np.testing.assert_array_equal(back.images, views.images)
    np.testing.assert_array_equal(back.masks, views.masks)
    np.testing.assert_array_equal(back.backgrounds, views.backgrounds)
    image, mask = back.at(90)
    np.testing.assert_array_equal(image, views.images[:, 2])
    with pytest.raises(DataError, match="angle 30"):
        back.at(30)
    with pytest.raises(DataError, match="true_views"):
        load_true_views(tmp_path, "val")


def test_real_datasets_have_no_true_views(tmp_path: Path, make_prepared):
    prepared = make_prepared(tmp_path / "prepared")
    table = load_prepared(prepared, splits=("train",))["train"]
    with pytest.raises(DataError, match="only for SynthReID"):
        render_true_views(prepared, relative_paths(table["path"].tolist()[:2], prepared), [0, 90])
    report = render_splits(prepared, tmp_path / "views", {"train": table}, [0, 90])  # the stage: a marker
    assert report["available"] is False and "only for SynthReID" in report["reason"]
    with pytest.raises(DataError, match="only for SynthReID"):
        load_true_views(tmp_path / "views", "val")

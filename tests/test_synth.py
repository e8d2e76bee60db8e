"""SynthReID generator: Market layout, ground truth aligned with the renderer, determinism, resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from genreid.body import load_body_model
from genreid.errors import ConfigError
from genreid.render import render_structure
from genreid.synth import SynthConfig, SynthDomainBConfig, generate_synthreid, load_ground_truth

TINY = dict(num_train_ids=3, num_test_ids=3, num_cameras=3, cameras_per_id=2, images_per_camera=2,
            num_distractors=2, height=64)


def _generate(out: Path, stop_after_batches: int | None = None, **settings):
    """The tiny dataset with ``settings`` on top, 8 images per batch."""
    section = SynthDomainBConfig if settings.get("domain") == "b" else SynthConfig
    return generate_synthreid(out, section(**{**TINY, **settings}), batch_size=8, progress=False,
                              stop_after_batches=stop_after_batches)
NAME = re.compile(r"^(\d{4})_c(\d)s1_(\d{6})_01\.jpg$")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "images"
    _generate(out, seed=5)
    return out


def test_market_layout_names_and_counts(tiny: Path):
    summary = json.loads((tiny / "summary.json").read_text())
    seen: dict[str, list[tuple[int, int]]] = {}
    for split, folder in (("train", "bounding_box_train"), ("query", "query"), ("gallery", "bounding_box_test")):
        names = sorted(p.name for p in (tiny / folder).iterdir())
        assert all(NAME.match(n) for n in names), names
        seen[split] = [(int(NAME.match(n)[1]), int(NAME.match(n)[2])) for n in names]
        counts = summary["splits"][split]
        assert counts["images"] == len(names)
        assert counts["ids"] == len({p for p, _ in seen[split]})
    train_ids = {p for p, _ in seen["train"]}
    test_ids = {p for p, _ in seen["query"]}
    assert train_ids == {1, 2, 3} and test_ids == {4, 5, 6}
    assert {p for p, _ in seen["gallery"]} == test_ids | {0}
    assert sum(p == 0 for p, _ in seen["gallery"]) == 2
    # one query per (test id, camera); each id in 2 of 3 cameras with 2 images per camera
    assert len(seen["query"]) == len(set(seen["query"])) == 3 * 2
    for pid in test_ids:
        q_cams = {c for p, c in seen["query"] if p == pid}
        g_cams = {c for p, c in seen["gallery"] if p == pid}
        assert len(q_cams) == 2 and q_cams == g_cams
    all_names = [p.name for p in tiny.rglob("*.jpg")]
    assert len(all_names) == len(set(all_names)) == 12 + 6 + 8
    assert not any(tiny.parent.glob(".*partial*"))


def test_loads_with_the_market_api(tiny: Path):
    from genreid.data import load_dataset

    splits = load_dataset("synthetic", tiny, expected_counts="canonical")
    summary = json.loads((tiny / "summary.json").read_text())
    frames = {s: getattr(splits, s) for s in ("train", "query", "gallery")}
    for split, df in frames.items():
        assert len(df) == summary["splits"][split]["images"]
    assert sorted(frames["train"]["pid"].unique()) == [0, 1, 2]  # train pids relabelled
    assert (frames["gallery"]["pid"] == 0).sum() == 2


def test_ground_truth_overlays_the_images(tiny: Path):
    """Re-rendering the stored SMPL parameters with the stored camera gives the stored person
    mask (the mesh stage's oracle mode relies on this)."""
    gt = load_ground_truth(tiny / "ground_truth.npz")
    paths = sorted(p.relative_to(tiny).as_posix() for p in tiny.rglob("*.jpg"))
    assert len(gt) == len(paths) and sorted(gt.paths.tolist()) == paths
    rows = gt.rows_of(["images/" + p for p in paths])  # prepared-folder paths work too
    assert gt.betas.shape == (26, 10) and gt.pose.shape == (26, 72) and gt.cam.shape == (26, 3)
    body = load_body_model("procedural")
    verts, _ = body(torch.as_tensor(gt.betas[rows]), torch.as_tensor(gt.pose[rows]))
    render = render_structure(verts, body.faces, torch.as_tensor(gt.cam[rows]), 64, 32).numpy() > 0
    masks = gt.masks(paths)
    person = gt.pids[rows] > 0
    inter, union = (render & masks).sum((1, 2)), (render | masks).sum((1, 2))
    iou = inter / np.maximum(union, 1)
    assert iou[person].min() > 0.75 and np.median(iou[person]) > 0.85  # bags are not in the body mesh
    assert masks.sum((1, 2))[person].min() > 0.05 * 64 * 32
    half = gt.masks(paths, 32, 16)
    assert half.shape == (26, 32, 16) and abs(half.mean() - masks.mean()) < 0.05
    x0, y0, x1, y1 = gt.bbox[rows][person].T
    assert (x0 >= 0).all() and (x1 <= 32).all() and (y1 <= 64).all() and (x0 < x1).all() and (y0 < y1).all()


def test_same_seed_same_bytes_other_seed_other_people(tmp_path, tiny: Path):
    again = tmp_path / "again"
    _generate(again, seed=5)
    assert _files(again) == _files(tiny)
    other = tmp_path / "other"
    _generate(other, seed=6)
    a, b = load_ground_truth(tiny / "ground_truth.npz"), load_ground_truth(other / "ground_truth.npz")
    assert not np.allclose(a.betas, b.betas)
    assert (a.attributes != b.attributes).any()


def test_a_killed_run_resumes_to_the_same_bytes(tmp_path, tiny: Path):
    out = tmp_path / "images"
    assert _generate(out, seed=5, stop_after_batches=2) is None
    partial = tmp_path / ".images.partial"
    assert len(list((partial / "gt").iterdir())) == 2 and not out.exists()
    summary = _generate(out, seed=5)
    assert summary["splits"]["train"]["images"] == 12
    assert _files(out) == _files(tiny) and not partial.exists()


def test_changed_params_do_not_resume_stale_batches(tmp_path):
    out = tmp_path / "images"
    _generate(out, seed=1, stop_after_batches=1)
    _generate(out, seed=2)
    fresh = tmp_path / "fresh"
    _generate(fresh, seed=2)
    assert _files(out) == _files(fresh)


def test_bad_plans_are_user_errors(tmp_path):
    with pytest.raises(ConfigError, match="cameras_per_id"):
        _generate(tmp_path / "x", cameras_per_id=4)


def test_domain_b_is_a_documented_shift_and_leaves_domain_a_alone(tmp_path, tiny: Path):
    from genreid.synth.scene import DOMAIN_B, make_camera_looks

    a, default = make_camera_looks(5, 3, 64, 32, 0.1, 1.0, domain="a"), make_camera_looks(5, 3, 64, 32, 0.1, 1.0)
    b = make_camera_looks(5, 3, 64, 32, 0.1, 1.0, domain="b")
    for la, ld, lb in zip(a, default, b):
        assert la.brightness == ld.brightness and all(np.array_equal(x, y) for x, y in zip(la.backgrounds,
                                                                                          ld.backgrounds))
        assert lb.brightness == pytest.approx(la.brightness * DOMAIN_B["exposure"])
        assert lb.noise == pytest.approx(la.noise * DOMAIN_B["noise"])
        assert lb.blur == pytest.approx(la.blur + DOMAIN_B["blur"])
        assert np.allclose(lb.cast, la.cast * np.asarray(DOMAIN_B["tint"]))
        assert np.mean(lb.backgrounds[0]) < np.mean(la.backgrounds[0])
    with pytest.raises(ValueError, match="domain"):
        make_camera_looks(5, 3, 64, 32, 0.1, 1.0, domain="c")

    shifted = tmp_path / "b"
    summary = _generate(shifted, seed=5, domain="b")
    assert summary["params"]["domain"] == "b"
    assert "domain" not in json.loads((tiny / "summary.json").read_text())["params"]  # domain a: unchanged bytes
    same_people = load_ground_truth(tiny / "ground_truth.npz"), load_ground_truth(shifted / "ground_truth.npz")
    assert np.array_equal(same_people[0].attributes, same_people[1].attributes)  # only the cameras changed

    def mean_rgb(root: Path) -> np.ndarray:
        from PIL import Image

        return np.mean([np.asarray(Image.open(p), dtype=np.float64).mean(axis=(0, 1))
                        for p in sorted((root / "bounding_box_train").glob("*.jpg"))], axis=0)

    ra, rb = mean_rgb(tiny), mean_rgb(shifted)
    assert rb.mean() < 0.85 * ra.mean() and rb[2] / rb[0] > ra[2] / ra[0]  # darker and bluer

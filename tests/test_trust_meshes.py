"""The meshes stage's DVC-cached output holds no timing, so a killed-and-rerun
stage gives byte-identical files (and DVC sees no change downstream)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from genreid.body import load_body_model
from genreid.data.manifest import load_prepared
from genreid.meshes.estimators import Estimator, SmplParams
from genreid.meshes.stage import MeshSource, RenderOptions, render_split

ANGLES = [0, 90, 180, 270]
H, W = 32, 16


class CountingEstimator(Estimator):
    """A per-image pose from the file name (deterministic, no network)."""

    name = "counting"

    def estimate(self, paths, rel_paths):
        seeds = [int(hashlib.sha1(p.encode()).hexdigest()[:8], 16) for p in rel_paths]
        pose = np.stack([np.random.default_rng(s).normal(0, 0.2, 72) for s in seeds]).astype(np.float32)
        n = len(paths)
        return SmplParams(betas=np.zeros((n, 10), np.float32), pose=pose,
                          cam=np.tile(np.array([[1.0, 0.0, 0.05]], np.float32), (n, 1)))


TIMING_KEYS = {"seconds", "renders_per_s", "stats", "device", "finished_at", "started_at"}


def _tree_md5(root):
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _keys(obj):
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


def test_killed_and_rerun_meshes_give_byte_identical_cached_files(tmp_path, make_random_prepared):
    prepared = make_random_prepared(tmp_path / "prepared", {"train": 7})
    table = load_prepared(prepared, splits=("train",))["train"]
    args = dict(table=table, prepared_dir=prepared, split="train",
                source=MeshSource(CountingEstimator(), load_body_model("procedural"), "procedural"),
                options=RenderOptions(ANGLES, H, W, batch_size=3, progress=False))
    with pytest.raises(KeyboardInterrupt):
        render_split(out_dir=tmp_path / "killed", stop_after_chunks=1, **args)
    resumed = render_split(out_dir=tmp_path / "killed", **args)
    straight = render_split(out_dir=tmp_path / "straight", **args)
    assert _tree_md5(tmp_path / "killed") == _tree_md5(tmp_path / "straight")
    again = render_split(out_dir=tmp_path / "straight", **args)  # a DVC rerun with unchanged inputs
    assert again["reused"] and _tree_md5(tmp_path / "killed") == _tree_md5(tmp_path / "straight")
    # the timings still reach the caller (the stage writes them to results/<ds>/meshes/alignment.json)
    assert resumed["seconds"] >= 0 and straight["renders_per_s"] > 0


def test_done_marker_holds_no_timing(tmp_path, make_random_prepared):
    prepared = make_random_prepared(tmp_path / "prepared", {"train": 4})
    table = load_prepared(prepared, splits=("train",))["train"]
    render_split(table, prepared, tmp_path / "m", "train",
                 MeshSource(CountingEstimator(), load_body_model("procedural"), "procedural"),
                 RenderOptions(ANGLES, H, W, 2, progress=False))
    done = json.loads((tmp_path / "m" / "train_done.json").read_text())
    assert not (_keys(done) & TIMING_KEYS), done

"""The meshes stage end to end on tiny data: HMR mode with a random regressor and the procedural
body (shapes and files right), interruption and resume without redoing finished work."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from genreid.body import load_body_model
from genreid.data.manifest import load_prepared
from genreid.meshes.estimators import Estimator, HmrEstimator, OracleEstimator, SmplParams
from genreid.meshes.hmr import build_hmr
from genreid.meshes.stage import MeshSource, RenderChecks, RenderOptions, render_split, run_meshes
from genreid.meshes.store import RenderStore

ANGLES = [0, 90, 180, 270]
H, W = 32, 16


class CountingEstimator(Estimator):
    """A whole estimator in one small class: a per-image pose from the file name, counting the
    images it is asked about (to prove a rerun does no repeated work)."""

    name = "counting"
    calls = 0

    def estimate(self, paths, rel_paths):
        CountingEstimator.calls += len(paths)
        seeds = [int(hashlib.sha1(p.encode()).hexdigest()[:8], 16) for p in rel_paths]
        pose = np.stack([np.random.default_rng(s).normal(0, 0.2, 72) for s in seeds]).astype(np.float32)
        n = len(paths)
        return SmplParams(betas=np.zeros((n, 10), np.float32), pose=pose,
                          cam=np.tile(np.array([[1.0, 0.0, 0.05]], np.float32), (n, 1)))


@pytest.fixture(scope="module")
def hmr():
    torch.manual_seed(0)
    return build_hmr(None, None)


def test_hmr_mode_end_to_end(tmp_path, hmr, make_random_prepared):
    prepared = make_random_prepared(tmp_path / "prepared")
    tables = load_prepared(prepared, splits=("train", "val"))
    est = HmrEstimator(hmr, "cpu", work_size=(64, 32), crop_size=64)
    source = MeshSource(est, load_body_model("procedural"), "procedural")
    report = run_meshes(tables, prepared, tmp_path / "meshes", source,
                        RenderOptions(ANGLES, H, W, batch_size=4, progress=False),
                        RenderChecks(tmp_path / "results", overlay_samples=3, seed=1))
    assert report["splits"]["train"]["images"] == 10 and report["splits"]["val"]["rendered_chunks"] == 1
    for split, n in (("train", 10), ("val", 3)):
        store = RenderStore(tmp_path / "meshes", split)
        assert len(store) == n and store.angles == ANGLES
        for a in ANGLES:
            arr = np.load(tmp_path / "meshes" / f"{split}_render_{a}.npy")
            assert arr.shape == (n, H, W) and arr.dtype == np.uint8
            assert (arr > 0).reshape(n, -1).any(1).all()  # every image has a visible body at every angle
        smpl = store.smpl()
        assert smpl["betas"].shape == (n, 10) and smpl["pose"].shape == (n, 72) and smpl["cam"].shape == (n, 3)
        assert np.isfinite(smpl["pose"]).all() and (smpl["cam"][:, 0] > 0).all()
        index = pd.read_csv(tmp_path / "meshes" / f"{split}_index.csv")
        assert index["path"].tolist() == [f"images/{split}/{i:04d}_c{i % 3 + 1}s1_000{i}_00.jpg" for i in range(n)]
        store.check_aligned(tables[split]["path"].tolist())
    # the 90-degree render differs from the frontal one (the body turned)
    store = RenderStore(tmp_path / "meshes", "train")
    assert (store.batch(np.arange(10), 0) != store.batch(np.arange(10), 90)).any()
    with Image.open(tmp_path / "results" / "overlay.png") as im:
        assert im.size == (64 * (2 + len(ANGLES)), 14 + 3 * 128)
    assert len(report["overlay_rows"]) == 3


def test_interrupted_stage_resumes_without_redoing_work(tmp_path, make_random_prepared):
    prepared = make_random_prepared(tmp_path / "prepared", {"train": 11})
    table = load_prepared(prepared, splits=("train",))["train"]
    body = load_body_model("procedural")
    est = CountingEstimator()
    options = RenderOptions(ANGLES, H, W, batch_size=3, progress=False)
    args = dict(table=table, prepared_dir=prepared, split="train", source=MeshSource(est, body, "procedural"),
                options=options)
    CountingEstimator.calls = 0
    with pytest.raises(KeyboardInterrupt):
        render_split(out_dir=tmp_path / "a", stop_after_chunks=2, **args)
    assert CountingEstimator.calls == 6 and not (tmp_path / "a" / "train_done.json").exists()
    progress = json.loads((tmp_path / "a" / ".train.partial" / "progress.json").read_text())
    assert sorted(progress["done"]) == ["0", "1"]
    out = render_split(out_dir=tmp_path / "a", **args)
    assert out["rendered_chunks"] == 2 and CountingEstimator.calls == 6 + 5  # rows 6..10 only
    again = render_split(out_dir=tmp_path / "a", **args)
    assert again["rendered_chunks"] == 0 and again["reused"] and CountingEstimator.calls == 11
    assert again["renders_per_s"] is None and out["renders_per_s"] > 0  # timings: this run's, results file only
    # the resumed result equals an uninterrupted run, byte for byte
    render_split(out_dir=tmp_path / "b", **args)
    for a in ANGLES:
        assert np.array_equal(np.load(tmp_path / "a" / f"train_render_{a}.npy"),
                              np.load(tmp_path / "b" / f"train_render_{a}.npy"))
    assert np.array_equal(RenderStore(tmp_path / "a", "train").smpl()["pose"],
                          RenderStore(tmp_path / "b", "train").smpl()["pose"])
    # other angles invalidate the finished split
    changed = render_split(out_dir=tmp_path / "a", **{**args, "options": replace(options, angles=[0, 45])})
    assert changed["rendered_chunks"] == 4 and RenderStore(tmp_path / "a", "train").angles == [0, 45]
    assert not (tmp_path / "a" / "train_render_90.npy").exists()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A tiny real SynthReID (12 train images at 64x32) with its ground truth and person masks."""
    from genreid.data.prepare import PrepareOptions, prepare_dataset

    out = tmp_path_factory.mktemp("synth") / "data" / "prepared" / "synthetic"
    prepare_dataset("synthetic", {"seed": 0, "num_train_ids": 3, "num_test_ids": 2, "cameras_per_id": 2,
                                  "images_per_camera": 2, "num_distractors": 0, "height": 64, "num_cameras": 2},
                    out, PrepareOptions(val_fraction=0.0, progress=False))
    return out


class ShiftedOracle(OracleEstimator):
    """The oracle with every camera moved right by ``pixels`` (of a 64-row image): a misalignment."""

    pixels = 2.0

    def estimate(self, paths, rel_paths):
        p = super().estimate(paths, rel_paths)
        p.cam[:, 1] += self.pixels / (32.0 * p.cam[:, 0])
        return p


@pytest.mark.parametrize("estimator_cls, aligned", [(OracleEstimator, True), (ShiftedOracle, False)])
def test_oracle_renders_overlay_the_person_masks(tmp_path, synth, estimator_cls, aligned):
    tables = load_prepared(synth, splits=("train", "val"))
    est = estimator_cls(synth / "ground_truth.npz")
    source = MeshSource(est, load_body_model("procedural"), "procedural")
    report = run_meshes(tables, synth, tmp_path / "meshes", source,
                        RenderOptions(ANGLES, 64, 32, batch_size=8, progress=False),
                        RenderChecks(tmp_path / "results", overlay_samples=2, seed=1,
                                     masks=lambda paths: est.masks(paths, 64, 32)))
    train = report["alignment"]["train"]
    assert train["images"] == 12 and report["alignment"]["val"]["images"] == 0  # an empty split is fine
    if aligned:
        assert train["render_in_mask"]["mean"] >= 0.98 and train["render_in_mask"]["min"] >= 0.95
        assert train["iou"]["mean"] >= 0.75
        smpl = RenderStore(tmp_path / "meshes", "train").smpl()
        rows = est.table.rows_of(tables["train"]["path"].tolist())
        assert np.allclose(smpl["cam"], est.table.cam[rows]) and np.allclose(smpl["pose"], est.table.pose[rows])
    else:
        assert train["render_in_mask"]["mean"] < 0.9


def test_other_body_model_redoes_a_finished_split(tmp_path, make_random_prepared):
    prepared = make_random_prepared(tmp_path / "prepared", {"train": 4})
    table = load_prepared(prepared, splits=("train",))["train"]
    est = CountingEstimator()
    args = dict(table=table, prepared_dir=prepared, out_dir=tmp_path / "m", split="train",
                options=RenderOptions([0, 180], H, W, batch_size=4, progress=False))
    first = render_split(source=MeshSource(est, load_body_model("procedural"), "procedural"), **args)
    same = render_split(source=MeshSource(est, load_body_model("procedural"), "procedural"), **args)
    other = render_split(source=MeshSource(est, load_body_model("procedural", seed=1), "procedural"),  # other body
                         **args)
    assert (first["rendered_chunks"], same["rendered_chunks"], other["rendered_chunks"]) == (1, 0, 1)


def test_killed_stage_resumes_from_the_last_verified_chunk(tmp_path, synth, monkeypatch):
    """SIGKILL the real stage after chunk 2's arrays are written but before its sidecar entry; the
    rerun redoes exactly that chunk and the next, and its output equals an uninterrupted run."""
    root = Path(__file__).resolve().parents[1]
    data_root = synth.parent.parent
    params = tmp_path / "params.yaml"
    params.write_text(f"_base_: {root / 'params' / 'synthetic_cpu.yaml'}\ndata:\n  root: {data_root}\n"
                      "mesh:\n  estimator: oracle\n  also_measure: []\n  batch_size: 4\n  splits: [train]\n"
                      "  angles: [0, 180]\n  overlay_samples: 2\n")  # the oracle: exact alignment to check
    argv = ["--params", str(params), "--dataset", "synthetic"]
    env = {**os.environ, "GENREID_KILL_AT": "meshes.write:2", "PYTHONPATH": str(root)}
    killed = subprocess.run([sys.executable, str(root / "stages" / "meshes.py"), *argv], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    out = data_root / "meshes" / "synthetic"
    assert not (out / "train_done.json").exists()
    assert sorted(json.loads((out / ".train.partial" / "progress.json").read_text())["done"]) == ["0"]

    spec = importlib.util.spec_from_file_location("meshes_stage_entry", root / "stages" / "meshes.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENREID_KILL_AT", raising=False)
    assert stage.main(argv) == 0
    report = json.loads((tmp_path / "results" / "synthetic" / "meshes" / "alignment.json").read_text())
    assert report["splits"]["train"]["rendered_chunks"] == 2  # chunk 0 was kept, chunks 1 and 2 rendered
    assert report["alignment"]["train"]["render_in_mask"]["mean"] >= 0.98
    assert not (out / ".train.partial").exists() and (tmp_path / "results/synthetic/meshes/overlay.png").is_file()

    table = load_prepared(synth, splits=("train",))["train"]
    render_split(table, synth, tmp_path / "clean", "train",
                 MeshSource(OracleEstimator(synth / "ground_truth.npz"), load_body_model("procedural"), "procedural"),
                 RenderOptions([0, 180], 64, 32, 4, progress=False))
    for a in (0, 180):
        name = f"train_render_{a}.npy"
        assert np.array_equal(np.load(out / name), np.load(tmp_path / "clean" / name))

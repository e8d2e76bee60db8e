"""Mesh accuracy against SynthReID's ground truth: the metrics (the oracle scores exactly zero), and
the estimators measured on a tiny generated set: oracle, the standing baseline and the landmark
estimator (MediaPipe inference on 12 crops, offline)."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from genreid.body import load_body_model
from genreid.data.manifest import load_prepared
from genreid.meshes.accuracy import (
    aggregate,
    angle_difference,
    pa_mpjpe,
    procrustes_align,
    silhouette_iou,
    worst_cases_sheet,
    yaw_of_pose,
)
from genreid.meshes.estimators import (
    EstimatorFiles,
    LandmarkEstimator,
    OracleEstimator,
    StandingEstimator,
    make_estimator,
    resolve_estimator,
)
from genreid.meshes.stage import MeshSource, RenderChecks, RenderOptions, measure_accuracy, run_meshes
from genreid.synth.ground_truth import load_ground_truth
from genreid.synth.poses import walking_pose


def _rotation(axis: tuple[float, float, float], degrees: float) -> torch.Tensor:
    from pytorch3d.transforms import axis_angle_to_matrix

    return axis_angle_to_matrix(torch.tensor(axis, dtype=torch.float64) * math.radians(degrees))


def test_procrustes_removes_rotation_scale_and_translation_but_not_a_mirror():
    torch.manual_seed(0)
    joints = torch.randn(4, 24, 3, dtype=torch.float64)
    moved = 1.7 * joints @ _rotation((0.3, 0.9, 0.1), 70).T + torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    assert torch.allclose(procrustes_align(moved, joints), joints, atol=1e-9)
    assert pa_mpjpe(moved, joints).max() < 1e-9
    mirrored = joints * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # left and right swapped
    assert pa_mpjpe(mirrored, joints).min() > 0.1
    noisy = joints + 0.01 * torch.randn_like(joints)
    assert 0.003 < pa_mpjpe(noisy, joints).mean() < 0.02


def test_yaw_of_a_pose_is_its_turn_about_the_vertical():
    rng = np.random.default_rng(0)
    yaws = np.array([0.0, 30.0, 90.0, 181.0, 270.0, 359.0])
    poses = np.stack([walking_pose(rng, y) for y in yaws])
    assert angle_difference(yaw_of_pose(poses), yaws).max() < 1e-6  # the pelvis tilt does not move it
    assert np.allclose(angle_difference(np.array([10.0, 350.0, 0.0]), np.array([350.0, 10.0, 180.0])),
                       [20.0, 20.0, 180.0])


def test_silhouette_iou():
    render = np.zeros((1, 4, 4), np.uint8)
    render[0, :2] = 200
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 1:3] = True
    assert silhouette_iou(render, mask)[0] == pytest.approx(4 / 12)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A tiny SynthReID at the real size (128 x 64): 12 training crops with their ground truth."""
    from genreid.data.prepare import PrepareOptions, prepare_dataset

    out = tmp_path_factory.mktemp("synth") / "prepared" / "synthetic"
    prepare_dataset("synthetic", {"seed": 0, "num_train_ids": 3, "num_test_ids": 2, "cameras_per_id": 2,
                                  "images_per_camera": 2, "num_distractors": 0, "height": 128, "num_cameras": 2},
                    out, PrepareOptions(val_fraction=0.0, progress=False))
    return out


def test_auto_prefers_ground_truth_then_hmr_then_landmarks(tmp_path):
    files = EstimatorFiles(tmp_path / "ground_truth.npz", tmp_path / "hmr.pt")
    assert resolve_estimator("auto", files) == "landmarks"
    (tmp_path / "hmr.pt").write_bytes(b"x")
    assert resolve_estimator("auto", files) == "hmr"
    (tmp_path / "ground_truth.npz").write_bytes(b"x")
    assert resolve_estimator("auto", files) == "oracle" and resolve_estimator("standing", files) == "standing"


def test_estimators_against_ground_truth(tmp_path, synth, monkeypatch):
    """The oracle scores zero joint and yaw error (a check of the metric); the standing baseline
    finds nobody and scores worse; the landmark estimator runs offline from the wheel's own models,
    finds most people and beats the standing body where it found them."""
    import mediapipe

    models = Path(mediapipe.__file__).parent / "modules"
    assert (models / "pose_detection" / "pose_detection.tflite").is_file()
    assert (models / "pose_landmark" / "pose_landmark_full.tflite").is_file()

    def no_network(*args, **kwargs):
        raise AssertionError("the landmark estimator tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    tables = load_prepared(synth, splits=("train",))
    body = load_body_model("procedural")
    files = EstimatorFiles(synth / "ground_truth.npz")
    oracle = make_estimator("oracle", "synthetic", files, body)
    assert isinstance(oracle, OracleEstimator)
    run_meshes(tables, synth, tmp_path / "meshes", MeshSource(oracle, body, "procedural"),
               RenderOptions([0], 64, 32, batch_size=8, progress=False), RenderChecks(tmp_path / "results", seed=1))
    others = {"standing": StandingEstimator(body), "landmarks": make_estimator("landmarks", "synthetic", files, body)}
    assert isinstance(others["landmarks"], LandmarkEstimator)
    truth = load_ground_truth(files.ground_truth)
    report, measured = measure_accuracy(tables, synth, tmp_path / "meshes", "oracle", others, truth, (body, body),
                                        batch_size=8)
    est = {name: e["all"] for name, e in report["estimators"].items()}
    assert set(est) == {"oracle", "standing", "landmarks"} and report["used"] == "oracle"
    assert est["oracle"]["images"] == 12 and est["oracle"]["detection_rate"] == 1.0
    assert est["oracle"]["pa_mpjpe_mm"]["max"] < 1e-3 and est["oracle"]["yaw_error_deg"]["max"] < 1e-3
    assert est["oracle"]["silhouette_iou"]["mean"] > 0.75
    assert est["standing"]["detection_rate"] == 0.0 and est["standing"]["pa_mpjpe_mm"]["mean"] > 30
    assert est["standing"]["silhouette_iou"]["mean"] < est["oracle"]["silhouette_iou"]["mean"]

    lm = next(m.scores for m in measured if m.estimator == "landmarks")
    standing = next(m.scores for m in measured if m.estimator == "standing")
    found = lm["detected"].to_numpy()
    assert found.mean() >= 0.75, lm
    # Joint error after Procrustes does not separate the two on 12 images: the alignment removes the
    # standing body's wrong orientation, and one side-on crop with its legs swapped costs the fit more
    # than it gains elsewhere (measured on this slice of SynthReID v2: medians 54 against 51 mm; on the
    # 612 training images of the default data the fit is ahead, see the meshes stage's accuracy.json).
    # Silhouette and yaw, which the alignment cannot hide, must show the fit.
    assert lm["pa_mpjpe_mm"][found].median() < 80, lm
    assert lm["silhouette_iou"][found].mean() > standing["silhouette_iou"][found].mean() + 0.1
    assert np.median(lm["yaw_error_deg"][found]) < 60
    assert aggregate(lm)["detection_rate"] == pytest.approx(found.mean())

    sheet = worst_cases_sheet([m for m in measured if m.estimator != "oracle"], synth, count=4)
    assert sheet.size[1] == 2 * (192 + 26) and np.asarray(sheet).std() > 10


def test_report_shows_the_mesh_accuracy_table_and_figure(tmp_path):
    from genreid.report.collect import CollectedDataset, read_mesh_accuracy
    from genreid.report.report import _mesh_accuracy

    block = {"mean": 57.7, "median": 53.2, "p90": 90.0, "max": 160.0}
    accuracy = {"used": "oracle", "ground_truth": True, "estimators": {
        "standing": {"all": {"images": 768, "detection_rate": 0.0, "pa_mpjpe_mm": block}},
        "landmarks": {"all": {"images": 768, "detection_rate": 0.9641, "pa_mpjpe_mm": block,
                              "yaw_error_deg": {"mean": 40.6, "median": 16.1}, "yaw_error_over_90": 0.18,
                              "silhouette_iou": {"mean": 0.63, "median": 0.688}}},
        "oracle": {"all": {"images": 768, "detection_rate": 1.0, "pa_mpjpe_mm": {"mean": 0.0, "median": 0.0}}}}}
    path = tmp_path / "accuracy.json"
    path.write_text(__import__("json").dumps(accuracy))
    assert read_mesh_accuracy(path) == accuracy and read_mesh_accuracy(tmp_path / "missing.json") == {}
    collected = CollectedDataset("synthetic", "unsupervised", "fp", [], {}, [],
                                 [("synthetic/meshes/worst.png", "worst")], mesh_accuracy=accuracy)
    text = "\n".join(_mesh_accuracy([collected]))
    rows = [line for line in text.splitlines() if line.startswith("| synthetic |")]
    assert [r.split(" | ")[1] for r in rows] == ["oracle", "landmarks", "standing"]  # oracle first, floor last
    assert "| synthetic | oracle | **used** | 768 | 100.0 % | 0.0 / 0.0 |" in text
    assert "| synthetic | landmarks | measured | 768 | 96.4 % | 57.7 / 53.2 | 40.6 / 16.1 | 18.0 % | 0.630 / 0.688 |" \
        in text
    assert "![worst mesh estimates, synthetic](synthetic/meshes/worst.png)" in text
    assert "found a plausible person" not in text  # the oracle was used: no fallback to state
    used_landmarks = CollectedDataset("synthetic", "unsupervised", "fp", [], {}, [], [],
                                      mesh_accuracy={**accuracy, "used": "landmarks"})
    assert ("`landmarks` found a plausible person in 96.4 % of the images; the other 3.6 %"
            in "\n".join(_mesh_accuracy([used_landmarks])))
    assert _mesh_accuracy([CollectedDataset("market1501", "unsupervised", "fp", [], {}, [], [])]) == []


def test_implausibly_small_fits_fall_back_to_the_standing_body(synth):
    """A fitted body must span min_height of the crop (a person box); asking for more than the whole
    height rejects every fit, and the images get exactly the standing fallback."""
    from genreid.meshes.estimators import LandmarkOptions, load_rgb, standing_params

    body = load_body_model("procedural")
    paths = sorted((synth / "images" / "bounding_box_train").glob("*.jpg"))[:3]
    images = load_rgb(paths)
    normal = LandmarkEstimator(body).estimate_images(images)
    strict = LandmarkEstimator(body, LandmarkOptions(min_height=1.5)).estimate_images(images)
    fallback = standing_params(body, len(paths))
    assert normal.detected.sum() >= 2
    assert (strict.detected == 0).all() and np.array_equal(strict.pose, fallback.pose)
    assert np.array_equal(strict.cam, fallback.cam)
    spans = LandmarkEstimator(body).spans(torch.as_tensor(fallback.betas), torch.as_tensor(fallback.pose),
                                          torch.as_tensor(fallback.cam))
    assert np.allclose(spans, 0.9, atol=1e-4)  # the standing body fills 0.9 of the height

"""DBSCAN pseudo-labels: eps rules, degenerate outcomes, quality metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genreid.cluster import ClusterSettings, cluster_features, jaccard_distance, label_quality
from genreid.cluster.pseudo_labels import camera_centred, rho_eps
from genreid.cluster.quality import outliers_as_singletons


def _blobs(per: int, centres: int, d: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d))
    ids = np.repeat(np.arange(centres), per)
    x = c[ids] + spread * rng.normal(size=(ids.size, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), ids


def test_rho_eps_matches_the_authors_formula():
    rng = np.random.default_rng(0)
    a = rng.random((57, 57)).astype(np.float32)
    d = np.triu(a, 1) + np.triu(a, 1).T
    d[rng.random(d.shape) < 0.2] = 0.0  # zeros are excluded by the rule
    d[5, 7] = d[7, 5] = 1.0
    for rho in (0.002, 0.05, 0.3):
        tri = np.triu(d, 1)
        tri = np.sort(tri[np.nonzero(tri)], axis=None)
        want = tri[:int(np.round(rho * tri.size))].mean() if np.round(rho * tri.size) else tri[:1].mean()
        assert rho_eps(d, rho, block_rows=10) == pytest.approx(float(want), rel=1e-6)


def test_separated_blobs_are_recovered_with_fixed_eps():
    x, ids = _blobs(per=12, centres=5, d=32, spread=0.15, seed=1)
    labels, q = cluster_features(x, ClusterSettings(eps=0.6, min_samples=4, k1=10, k2=4), true_ids=ids)
    assert labels.dtype == np.int64 and labels.shape == ids.shape
    assert q["num_clusters"] == 5 and q["num_outliers"] == 0 and q["outlier_ratio"] == 0.0
    assert q["nmi"] == pytest.approx(1.0) and q["ari"] == pytest.approx(1.0)
    assert q["eps"] == 0.6 and q["eps_rule"] == "fixed" and q["largest_cluster"] == 12


def test_rho_rule_and_precomputed_input_agree_with_features():
    x, ids = _blobs(per=10, centres=6, d=24, spread=0.2, seed=2)
    dist = jaccard_distance(x, k1=10, k2=4)
    lab_f, q_f = cluster_features(torch.from_numpy(x), ClusterSettings(rho=0.05, min_samples=4, k1=10, k2=4))
    lab_d, q_d = cluster_features(dist, ClusterSettings(rho=0.05, min_samples=4))
    np.testing.assert_array_equal(lab_f, lab_d)
    assert q_f["eps"] == pytest.approx(rho_eps(dist, 0.05)) and q_f["eps_rule"] == "rho=0.05"
    assert q_f["nmi"] is None and q_f["num_clusters"] >= 1


def test_outliers_are_minus_one_and_counted():
    ids = np.concatenate([np.repeat([0, 1, 2], 10), [100, 101, 102]])
    dist = np.where(ids[:, None] == ids[None, :], 0.2, 1.0).astype(np.float32)
    np.fill_diagonal(dist, 0.0)
    dist[30, :10] = dist[:10, 30] = 0.5  # a true singleton within eps of cluster 0: absorbed
    labels, q = cluster_features(dist, ClusterSettings(eps=0.6, min_samples=4), true_ids=ids)
    assert (labels[31:] == -1).all() and (labels[:31] >= 0).all() and labels[30] == labels[0]
    assert q["num_outliers"] == 2 and q["outlier_ratio"] == pytest.approx(2 / 33)
    assert q["num_clusters"] == 3 and q["largest_cluster"] == 11
    assert 0.9 < q["ari"] < 1.0


def test_zero_clusters_and_one_giant_cluster_do_not_crash():
    x, ids = _blobs(per=3, centres=4, d=8, spread=0.1, seed=5)
    labels, q = cluster_features(x, ClusterSettings(eps=0.6, min_samples=50, k1=5, k2=2), true_ids=ids)
    assert (labels == -1).all() and q["num_clusters"] == 0 and q["outlier_ratio"] == 1.0
    assert q["largest_cluster"] == 0 and q["nmi"] is not None
    flat = np.full((20, 20), 0.1, dtype=np.float32)
    np.fill_diagonal(flat, 0.0)
    labels, q = cluster_features(flat, ClusterSettings(eps=0.5, min_samples=4))
    assert (labels == 0).all() and q["num_clusters"] == 1 and q["largest_cluster"] == 20


def test_requires_an_eps_rule():
    with pytest.raises(ValueError, match="eps"):
        cluster_features(np.zeros((4, 4), dtype=np.float32))


def test_label_quality_values():
    labels = np.array([0, 0, 1, 1, 1, -1, -1])
    truth = np.array([5, 5, 6, 6, 6, 7, 8])
    q = label_quality(labels, truth)
    assert q["num_clusters"] == 2 and q["num_outliers"] == 2 and q["mean_cluster_size"] == 2.5
    assert q["nmi"] == pytest.approx(1.0) and q["ari"] == pytest.approx(1.0)
    merged = label_quality(np.array([0, 0, 0, 0, 0, -1, -1]), truth)
    assert merged["ari"] < 0.5 and merged["nmi"] < 0.9
    np.testing.assert_array_equal(outliers_as_singletons(labels), [0, 0, 1, 1, 1, 2, 3])
    assert label_quality(labels)["nmi"] is None


def test_camera_centring_turns_camera_clusters_into_identity_clusters():
    rng = np.random.default_rng(7)
    ident, cam = rng.normal(size=(2, 16)), rng.normal(size=(2, 16)) * 4
    rows = [(i, c) for i in range(2) for c in range(2) for _ in range(10)]
    ids, camids = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    x = ident[ids] + cam[camids] + 0.1 * rng.normal(size=(40, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    settings = ClusterSettings(eps=0.6, min_samples=4, k1=25, k2=3)
    _, by_camera = cluster_features(x, settings, true_ids=ids)
    labels, by_id = cluster_features(x, settings, true_ids=ids, camids=camids)
    assert by_camera["num_clusters"] == 2 and by_camera["ari"] < 0.1  # one cluster per camera
    assert by_id["num_clusters"] == 2 and by_id["ari"] == pytest.approx(1.0)
    centred = camera_centred(torch.from_numpy(x), camids)
    torch.testing.assert_close(centred.norm(dim=1), torch.ones(40))
    with pytest.raises(ValueError, match="camids"):
        camera_centred(x, camids[:5])

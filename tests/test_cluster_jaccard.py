"""jaccard_distance against a direct, slow implementation of the published algorithm."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genreid.cluster import jaccard_distance
from genreid.cluster.jaccard import knn_search


def reference_jaccard(x: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """Zhong et al.'s k-reciprocal encoding + Jaccard, step by step with dense arrays, written
    from the algorithm as the authors' faiss code runs it (kNN list of k1 entries, self first)."""
    n = x.shape[0]
    sq = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    rank = np.argsort(sq, axis=1, kind="stable")[:, :k1]

    def reciprocal(i: int, k: int) -> set[int]:
        return {int(j) for j in rank[i, :k + 1] if i in rank[j, :k + 1]}

    half_k = int(np.around(k1 / 2))
    full_sets = [reciprocal(i, k1) for i in range(n)]
    half_sets = [reciprocal(i, half_k) for i in range(n)]
    v = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        expansion = set(full_sets[i])
        for c in full_sets[i]:
            if len(half_sets[c] & full_sets[i]) > 2 / 3 * len(half_sets[c]):
                expansion |= half_sets[c]
        members = np.array(sorted(expansion))
        logits = -(2 - 2 * x[members] @ x[i])
        weights = np.exp(logits - logits.max())
        v[i, members] = weights / weights.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            overlap = np.minimum(v[i], v[j]).sum()
            out[i, j] = 1 - overlap / (2 - overlap)
    return np.maximum(out, 0)


def _blobs(n: int, d: int, centres: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d))
    x = c[rng.integers(0, centres, n)] + spread * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("n,d,centres,spread,k1,k2,seed", [
    (150, 16, 150, 1.0, 20, 6, 0),   # random directions: small reciprocal sets
    (160, 24, 12, 0.35, 20, 6, 1),   # clustered: expansion and query expansion do real work
    (120, 8, 6, 0.5, 30, 6, 2),      # the paper's k1=30, large clusters
    (90, 12, 9, 0.4, 7, 1, 3),       # odd k1 (round-half-even of k1/2), no query expansion
])
def test_matches_reference(n, d, centres, spread, k1, k2, seed):
    x = _blobs(n, d, centres, spread, seed)
    got = jaccard_distance(x, k1=k1, k2=k2)
    want = reference_jaccard(x, k1, k2)
    assert got.dtype == np.float32 and got.shape == (n, n)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert (want < 1).sum() > n  # the case is not trivial: pairs beyond the diagonal share support


def test_properties_and_input_types():
    x = _blobs(80, 10, 8, 0.4, 5)
    d_np = jaccard_distance(x, k1=10, k2=4)
    d_torch = jaccard_distance(torch.from_numpy(x), k1=10, k2=4)
    np.testing.assert_array_equal(d_np, d_torch)
    np.testing.assert_allclose(np.diag(d_np), 0, atol=1e-6)
    np.testing.assert_allclose(d_np, d_np.T, atol=1e-6)
    assert d_np.min() >= 0 and d_np.max() <= 1
    same = jaccard_distance(x.astype(np.float64), k1=10, k2=4)
    np.testing.assert_allclose(same, d_np, atol=1e-6)


def test_small_n_clamps_k1():
    x = _blobs(12, 6, 3, 0.3, 6)
    got = jaccard_distance(x, k1=30, k2=6)
    np.testing.assert_allclose(got, reference_jaccard(x, 12, 6), atol=1e-5)


def test_knn_search_is_sorted_with_self_first():
    x = _blobs(50, 6, 50, 1.0, 7)
    rank = knn_search(torch.from_numpy(x), 5)
    assert rank.shape == (50, 5) and (rank[:, 0] == np.arange(50)).all()
    sq = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(rank, np.argsort(sq, axis=1, kind="stable")[:, :5])


def test_torch_knn_backend_agrees_with_faiss():
    x = _blobs(120, 16, 10, 0.5, 8)
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(knn_search(t, 12, "torch"), knn_search(t, 12, "faiss"))
    np.testing.assert_allclose(jaccard_distance(x, 12, 4, knn="torch"), jaccard_distance(x, 12, 4), atol=1e-6)
    with pytest.raises(ValueError, match="backend"):
        knn_search(t, 3, "annoy")


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        jaccard_distance(np.zeros(5, dtype=np.float32))
    assert jaccard_distance(np.zeros((0, 4), dtype=np.float32)).shape == (0, 0)

"""Distances, re-ranking, feature extraction and the batch evaluator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_distances
from torch import nn

from genreid.errors import GenreidError
from genreid.evaluation import (
    EvalOptions,
    ReidEvaluator,
    RerankParams,
    compute_distance,
    evaluate_features,
    evaluate_rank,
)
from genreid.evaluation.extract import extract_features
from genreid.evaluation.reference import evaluate_rank_reference, rerank_reference
from genreid.evaluation.rerank import k_reciprocal_rerank


def _clusters(rng, ids: int, per_id: int, dim: int, noise: float = 0.6):
    centres = rng.normal(size=(ids, dim))
    pids = np.repeat(np.arange(ids), per_id)
    return (centres[pids] + noise * rng.normal(size=(len(pids), dim))).astype(np.float32), pids


def test_distances_match_their_definitions():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(11, 5)).astype(np.float32)
    qn, gn = q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
    sq = ((qn[:, None] - gn[None]) ** 2).sum(-1)
    np.testing.assert_allclose(compute_distance(q, g), sq, atol=1e-5)
    np.testing.assert_allclose(compute_distance(q, g, block_rows=2), sq, atol=1e-5)
    np.testing.assert_allclose(compute_distance(q, g, "cosine"), cosine_distances(q, g), atol=1e-5)
    raw = ((q[:, None] - g[None]) ** 2).sum(-1)
    np.testing.assert_allclose(compute_distance(torch.from_numpy(q), g, normalize=False), raw, rtol=1e-4, atol=1e-4)
    assert compute_distance(q, q).min() >= 0.0 and compute_distance(q, g).dtype == np.float32
    with pytest.raises(GenreidError, match="dimension 5 but gallery features 4"):
        compute_distance(q, g[:, :4])


@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (6, 1, 0.5), (4, 3, 0.0)])
def test_rerank_equals_the_reference_implementation(k1, k2, lam):
    rng = np.random.default_rng(k1)
    feats, pids = _clusters(rng, ids=12, per_id=6, dim=8)
    q, g = feats[::4], np.delete(feats, np.s_[::4], axis=0)
    qg, qq, gg = compute_distance(q, g), compute_distance(q, q), compute_distance(g, g)
    ours = k_reciprocal_rerank(qg, qq, gg, k1, k2, lam)
    ref = rerank_reference(qg, qq, gg, k1, k2, lam)
    assert ours.shape == (len(q), len(g))
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_rerank_with_lambda_one_is_the_normalised_original_distance():
    rng = np.random.default_rng(5)
    q, g = rng.normal(size=(4, 6)), rng.normal(size=(9, 6))
    qg, qq, gg = compute_distance(q, g), compute_distance(q, q), compute_distance(g, g)
    expected = qg**2 / np.maximum((qq**2).max(0), (qg**2).max(1))[:, None]
    np.testing.assert_allclose(k_reciprocal_rerank(qg, qq, gg, 3, 2, 1.0), expected, rtol=1e-5)
    with pytest.raises(GenreidError, match="k1=20"):
        k_reciprocal_rerank(qg, qq, gg, 20, 6, 0.3)


class _BNEncoder(nn.Module):
    """Returns (a, f) like the identity encoder; BatchNorm makes train and eval mode differ."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.fc = nn.Linear(4 * 2, 8)

    def forward(self, x):
        h = nn.functional.adaptive_avg_pool2d(self.conv(x), (2, 1)).flatten(1)
        return h, self.bn(self.fc(h))


class _DictDataset(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 8, 4, generator=g)
        self.pids = [i // 3 for i in range(n)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "pid": self.pids[i], "camid": i % 2, "index": i}


def test_extraction_uses_eval_mode_keeps_order_and_restores_training():
    torch.manual_seed(0)
    model = _BNEncoder()
    model.bn.running_mean.fill_(0.3)
    ds = _DictDataset(10)
    model.train()
    one = extract_features(model, ds, batch_size=1)
    many = extract_features(model, ds, batch_size=4)
    assert model.training  # the caller's mode comes back
    torch.testing.assert_close(one.features, many.features)  # eval-mode BN: batch composition is irrelevant
    model.eval()
    with torch.no_grad():
        expected = nn.functional.normalize(model(ds.images)[1], dim=1)
    torch.testing.assert_close(one.features, expected)
    assert one.pids.tolist() == ds.pids and one.camids.tolist() == [i % 2 for i in range(10)]
    flipped = extract_features(model, ds, batch_size=3, flip=True)
    with torch.no_grad():
        both = model(ds.images)[1] + model(torch.flip(ds.images, dims=[3]))[1]
    torch.testing.assert_close(flipped.features, nn.functional.normalize(both, dim=1))


def test_nan_features_are_refused():
    class Broken(nn.Module):
        def forward(self, x):
            return x.mean((2, 3)) * float("nan")

    with pytest.raises(GenreidError, match="NaN"):
        extract_features(Broken(), _DictDataset(3))


def test_evaluator_batches_equal_one_call_and_self_mode_drops_only_the_query():
    rng = np.random.default_rng(2)
    feats, pids = _clusters(rng, ids=8, per_id=5, dim=6)
    order = rng.permutation(len(pids))
    feats, pids = feats[order], pids[order]
    cams = rng.integers(0, 3, len(pids))
    nq = 10
    direct = evaluate_features(feats[:nq], feats[nq:], pids[:nq], pids[nq:], cams[:nq], cams[nq:])
    ev = ReidEvaluator(nq)
    for s in range(0, len(pids), 7):
        ev.process(torch.from_numpy(feats[s:s + 7]), pids[s:s + 7], cams[s:s + 7])
    batched = ev.evaluate()
    assert batched.result.mAP == direct.result.mAP and np.array_equal(batched.distmat, direct.distmat)
    ev.reset()
    with pytest.raises(GenreidError, match="no batches"):
        ev.evaluate()

    selfev = ReidEvaluator(None, camera_filter=False)
    selfev.process(feats, pids, cams)
    out = selfev.evaluate().result
    d = compute_distance(feats, feats)
    aps = []
    for i in range(len(pids)):
        keep = np.arange(len(pids)) != i
        aps.append(evaluate_rank_reference(d[i:i + 1, keep], pids[i:i + 1], pids[keep], camera_filter=False)["mAP"])
    assert out.mAP == pytest.approx(np.mean(aps), abs=1e-9)
    assert out.camera_filter is False


def test_rerank_through_the_evaluator():
    rng = np.random.default_rng(3)
    feats, pids = _clusters(rng, ids=10, per_id=6, dim=8)
    cams = np.arange(len(pids)) % 3
    q, g = slice(0, None, 6), np.setdiff1d(np.arange(len(pids)), np.arange(0, len(pids), 6))
    out = evaluate_features(feats[q], feats[g], pids[q], pids[g], cams[q], cams[g],
                            EvalOptions(rerank=RerankParams(6, 3, 0.3)))
    qf, gf = feats[q], feats[g]
    expected = k_reciprocal_rerank(compute_distance(qf, gf), compute_distance(qf, qf), compute_distance(gf, gf), 6, 3)
    np.testing.assert_array_equal(out.distmat, expected)
    assert out.result.mAP == evaluate_rank(expected, pids[q], pids[g], cams[q], cams[g]).mAP

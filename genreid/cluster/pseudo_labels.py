"""Pseudo-labels: DBSCAN on the k-reciprocal Jaccard distance (SpCL / Cluster-Contrast / GCL).

eps is either fixed (Cluster-Contrast 0.6, GCL+ 0.55) or set by GCL's rho rule: the mean of
the smallest ``rho`` fraction of the non-zero pairwise distances above the diagonal.
Degenerate results (no cluster, one giant cluster) are returned, not raised: the caller
decides what to do with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.cluster import DBSCAN

from genreid.cluster.jaccard import jaccard_distance
from genreid.cluster.quality import label_quality


def rho_eps(dist: np.ndarray, rho: float, block_rows: int = 1024) -> float:
    """Mean of the smallest round(rho * M) of the M non-zero upper-triangular entries of ``dist``.

    Equal to ``np.sort(np.triu(dist, 1)[nonzero])[:top].mean()`` of the authors' code, without
    the N x N copies: each row block keeps only its smallest candidates.
    """
    n = dist.shape[0]
    if not 0.0 < rho < 1.0:
        raise ValueError(f"rho must be in (0, 1), got {rho}")
    cap = max(1, int(np.round(rho * n * (n - 1) / 2)))  # top_num can never exceed this
    kept: list[np.ndarray] = []
    total = 0
    for s in range(0, n, block_rows):
        block = dist[s:s + block_rows]
        upper = np.arange(n)[None, :] > np.arange(s, s + block.shape[0])[:, None]
        values = block[upper & (block != 0)]
        total += values.size
        if values.size > cap:
            values = np.partition(values, cap - 1)[:cap]
        kept.append(values)
    if total == 0:
        raise ValueError("the distance matrix has no non-zero pair above the diagonal; the rho rule is undefined")
    top = max(1, int(np.round(rho * total)))
    return float(np.partition(np.concatenate(kept), top - 1)[:top].mean())


def camera_centred(features, camids) -> torch.Tensor:
    """Subtract each camera's mean feature, then L2-normalise (camera-aware clustering option).

    Random or weak encoders group images by camera (background, colour cast); centring per
    camera removes that shared component before the neighbour search.
    """
    x = features.detach().float().clone() if isinstance(features, torch.Tensor) else \
        torch.from_numpy(np.asarray(features, dtype=np.float32)).clone()
    cams = torch.as_tensor(np.array(camids), device=x.device)
    if cams.shape[0] != x.shape[0]:
        raise ValueError(f"camids has {cams.shape[0]} entries for {x.shape[0]} features")
    for cam in torch.unique(cams):
        sel = cams == cam
        x[sel] -= x[sel].mean(dim=0, keepdim=True)
    return torch.nn.functional.normalize(x, dim=1)


def _looks_like_distances(x) -> bool:
    if getattr(x, "ndim", 0) != 2 or x.shape[0] != x.shape[1] or x.shape[0] == 0:
        return False
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return bool(np.all(np.abs(np.diag(arr)) < 1e-5)) and float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0 + 1e-6


@dataclass(frozen=True)
class ClusterSettings:
    """DBSCAN on the k-reciprocal Jaccard distance: the radius ``eps`` (fixed) or GCL's ``rho`` rule (``eps``
    wins; one of them is required), ``min_samples``, and the Jaccard distance's ``k1``, ``k2`` and
    neighbour search ``knn`` (unused for a precomputed distance). Defaults: Cluster-Contrast's."""

    eps: float | None = None
    rho: float | None = None
    min_samples: int = 4
    k1: int = 30
    k2: int = 6
    knn: str = "auto"


def cluster_features(features_or_dist, settings: ClusterSettings = ClusterSettings(), *, true_ids=None,
                     camids=None, precomputed: bool | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Labels (int64, -1 = outlier) and a quality dict (eps used, counts, NMI/ARI vs ``true_ids``).

    ``features_or_dist``: L2-normalised features (N x D, numpy or torch) or a precomputed N x N
    Jaccard distance; ``precomputed=None`` decides by shape (square, zero diagonal, in [0, 1]).
    ``camids`` (features only) centres the features per camera first (:func:`camera_centred`);
    Cluster-Contrast itself does not.
    """
    eps, rho, min_samples = settings.eps, settings.rho, settings.min_samples
    k1, k2, knn = settings.k1, settings.k2, settings.knn
    if eps is None and rho is None:
        raise ValueError("give eps (fixed DBSCAN radius) or rho (GCL's rule); both are None")
    x = features_or_dist
    if precomputed is None:
        precomputed = _looks_like_distances(x)
    if precomputed:
        dist = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float32)
    else:
        dist = jaccard_distance(x if camids is None else camera_centred(x, camids), k1=k1, k2=k2, knn=knn)
    if dist.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), dict(label_quality(np.zeros(0, dtype=np.int64)), eps=eps)
    used_eps = float(eps) if eps is not None else rho_eps(dist, float(rho))
    labels = DBSCAN(eps=used_eps, min_samples=min_samples, metric="precomputed").fit_predict(dist).astype(np.int64)
    quality = label_quality(labels, None if true_ids is None else np.asarray(true_ids))
    quality.update({"eps": used_eps, "eps_rule": "fixed" if eps is not None else f"rho={rho}",
                    "min_samples": int(min_samples)})
    return labels, quality

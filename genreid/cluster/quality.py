"""How good are pseudo-labels? Counts always; NMI/ARI against true ids when they are known.

The true ids are only ever logged, never fed back into training. For NMI/ARI every outlier
(-1) counts as its own singleton cluster, so discarding hard images is not rewarded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def outliers_as_singletons(labels: np.ndarray) -> np.ndarray:
    """Give each -1 a fresh label above the largest cluster id."""
    out = np.asarray(labels, dtype=np.int64).copy()
    mask = out < 0
    out[mask] = out.max(initial=-1) + 1 + np.arange(int(mask.sum()))
    return out


def label_quality(labels: np.ndarray, true_ids: np.ndarray | None = None) -> dict[str, Any]:
    """Cluster count, outlier ratio, cluster sizes; NMI and ARI when ``true_ids`` is given."""
    labels = np.asarray(labels, dtype=np.int64)
    n = int(labels.size)
    clustered = labels[labels >= 0]
    sizes = np.bincount(clustered) if clustered.size else np.zeros(0, dtype=np.int64)
    sizes = sizes[sizes > 0]
    quality: dict[str, Any] = {
        "num_samples": n,
        "num_clusters": int(sizes.size),
        "num_outliers": int(n - clustered.size),
        "outlier_ratio": float((n - clustered.size) / n) if n else 0.0,
        "largest_cluster": int(sizes.max()) if sizes.size else 0,
        "mean_cluster_size": float(sizes.mean()) if sizes.size else 0.0,
        "nmi": None,
        "ari": None,
    }
    if true_ids is not None and n:
        true_ids = np.asarray(true_ids)
        if true_ids.shape != labels.shape:
            raise ValueError(f"true_ids has shape {true_ids.shape}, labels {labels.shape}")
        pred = outliers_as_singletons(labels)
        quality["nmi"] = float(normalized_mutual_info_score(true_ids, pred))
        quality["ari"] = float(adjusted_rand_score(true_ids, pred))
    return quality

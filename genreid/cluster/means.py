"""Mean feature per pseudo-label: Cluster-Contrast's centroid memory and GCL+'s prototypes both
start from it (each normalises as its method does)."""

from __future__ import annotations

import torch


@torch.no_grad()
def cluster_means(features: torch.Tensor, labels: torch.Tensor, num_clusters: int | None = None) -> torch.Tensor:
    """(K, D) mean of ``features`` per label 0..K-1; outliers (-1) are ignored; empty labels give zeros.

    ``num_clusters`` defaults to the largest label + 1 (0 when every label is -1).
    """
    labels = torch.as_tensor(labels, dtype=torch.long, device=features.device)
    keep = labels >= 0
    if num_clusters is None:
        num_clusters = int(labels[keep].max().item()) + 1 if bool(keep.any()) else 0
    x = features[keep].float()
    sums = torch.zeros(num_clusters, features.shape[1], dtype=x.dtype, device=features.device)
    sums.index_add_(0, labels[keep], x)
    counts = torch.bincount(labels[keep], minlength=num_clusters).clamp(min=1).to(sums.dtype)
    return sums / counts[:, None]

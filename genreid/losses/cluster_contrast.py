"""Cluster-Contrast's loss (Dai et al. 2021), stage 1: ``CE(f_hat C^T / tau, y)`` against every
centroid of the cluster memory, the memory treated as constant (its update is
:meth:`genreid.memory.cluster_memory.ClusterMemory.update`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cluster_contrast_loss(features: torch.Tensor, centroids: torch.Tensor, targets: torch.Tensor,
                          temperature: float) -> torch.Tensor:
    """``features``: L2-normalised (B, D); ``centroids``: (K, D); ``targets``: cluster ids in 0..K-1."""
    if centroids.shape[0] == 0:
        raise RuntimeError("the cluster memory is empty: reset it with this epoch's clusters first")
    logits = features @ centroids.t() / temperature
    return F.cross_entropy(logits, targets.to(features.device))

"""Cluster-level memory of Cluster-Contrast (Dai et al. 2021): one L2-normalised centroid per
pseudo-identity, rebuilt from the clustering every epoch.

The loss, ``CE(f_hat @ C^T / tau, y)`` with the memory treated as constant, is
:func:`genreid.losses.cluster_contrast.cluster_contrast_loss` (tau = 0.05).
Update (the only write, after the backward pass, with the batch's detached features):
``C[y] <- normalize(m * C[y] + (1 - m) * f_hat)`` applied sample by sample in batch order,
m = 0.1 in the published recipe. Cluster-Contrast performs this inside an autograd
``backward``; doing it explicitly gives the same numbers and is visible in the trainer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genreid.cluster.means import cluster_means


class ClusterMemory(nn.Module):
    """Centroid memory: one L2-normalised centroid per cluster, moved towards each batch's features."""

    def __init__(self, dim: int, momentum: float = 0.1):
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum
        self.register_buffer("features", torch.zeros(0, dim))

    @property
    def num_clusters(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def reset(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Start the epoch's memory from the centroids of (normalised) ``features`` per label."""
        centroids = F.normalize(cluster_means(F.normalize(features.float(), dim=1), labels), dim=1)
        self.features = centroids.to(self.features.device)

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        """Restore a checkpointed memory; its size is that epoch's cluster count."""
        self.features = state["features"].to(self.features.device)

    @torch.no_grad()
    def update(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Momentum update, exactly as if applied one sample at a time in batch order.

        Samples are processed in rounds: round r holds the r-th occurrence of each label, so the
        labels inside a round are distinct and one vectorised write per round suffices.
        """
        x = inputs.detach().to(self.features.device, self.features.dtype)
        y = torch.as_tensor(targets, dtype=torch.long, device=self.features.device)
        order = torch.argsort(y, stable=True)
        sorted_y = y[order]
        first = torch.searchsorted(sorted_y, sorted_y)  # first position of each label in sorted order
        occurrence = torch.empty_like(y)
        occurrence[order] = torch.arange(y.numel(), device=y.device) - first
        m = self.momentum
        for r in range(int(occurrence.max().item()) + 1 if y.numel() else 0):
            sel = occurrence == r
            labels = y[sel]
            self.features[labels] = F.normalize(m * self.features[labels] + (1.0 - m) * x[sel], dim=1)

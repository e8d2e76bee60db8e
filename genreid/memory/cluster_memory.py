"""Cluster-level memory of Cluster-Contrast (Dai et al. 2021): one L2-normalised centroid per
pseudo-identity, rebuilt from the clustering every epoch.

Loss: ``CE(f_hat @ C^T / tau, y)`` with the memory treated as constant (the gradient reaches
only the encoder), tau = 0.05.
Update (the only write, after the backward pass, with the batch's detached features):
``C[y] <- normalize(m * C[y] + (1 - m) * f_hat)`` applied sample by sample in batch order,
m = 0.1 in the published recipe. Cluster-Contrast performs this inside an autograd
``backward``; doing it explicitly gives the same numbers and is visible in the trainer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cluster_centroids(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(K, D) L2-normalised means of ``features`` per label 0..K-1; -1 (outliers) is ignored."""
    labels = torch.as_tensor(labels, dtype=torch.long, device=features.device)
    keep = labels >= 0
    num = int(labels.max().item()) + 1 if bool(keep.any()) else 0
    sums = torch.zeros(num, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels[keep], features[keep])
    counts = torch.bincount(labels[keep], minlength=num).clamp(min=1).to(features.dtype)
    return F.normalize(sums / counts[:, None], dim=1)


class ClusterMemory(nn.Module):
    """Centroid memory with a contrastive loss over all clusters."""

    def __init__(self, dim: int, temperature: float = 0.05, momentum: float = 0.1):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.temperature = temperature
        self.momentum = momentum
        self.register_buffer("features", torch.zeros(0, dim))

    @property
    def num_clusters(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def reset(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Start the epoch's memory from the centroids of (normalised) ``features`` per label."""
        self.features = cluster_centroids(F.normalize(features.float(), dim=1), labels).to(self.features.device)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Contrastive loss of L2-normalised ``inputs`` (B, D) against all centroids."""
        if self.num_clusters == 0:
            raise RuntimeError("ClusterMemory is empty: call reset() with this epoch's clusters first")
        logits = inputs @ self.features.t() / self.temperature
        return F.cross_entropy(logits, targets.to(inputs.device))

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

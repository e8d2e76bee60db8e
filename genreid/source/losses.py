"""The strong baseline's two losses (Luo et al. 2019, "Bag of Tricks", BoT; used by MMT, Ge et al. 2020):
label-smoothed cross-entropy on the BN-neck's classifier logits and batch-hard triplet on the feature
before the BN-neck."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_smoothed_ce(logits: torch.Tensor, targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Mean over the batch of ``-sum_i q_i log p_i`` with ``q = (1 - eps) onehot + eps / N`` (BoT eq. 1:
    the true class gets ``1 - (N-1)/N eps``, every other ``eps/N``), so the classifier is not pushed to
    over-confident logits on the source identities."""
    log_p = F.log_softmax(logits.float(), dim=1)
    nll = -log_p.gather(1, targets.view(-1, 1)).squeeze(1)
    uniform = -log_p.mean(dim=1)
    return ((1.0 - epsilon) * nll + epsilon * uniform).mean()


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (not squared) between the rows of ``x``; clamped so the gradient stays finite."""
    x = x.float()
    sq = (x * x).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()


def batch_hard_triplet(features: torch.Tensor, targets: torch.Tensor, margin: float) -> torch.Tensor:
    """Hermans et al. 2017 as in BoT: per anchor the farthest positive and the nearest negative in the
    batch, ``mean(relu(d_ap - d_an + margin))``. Anchors without a positive or a negative are skipped
    (a PK batch has both); a batch with none gives 0."""
    dist = pairwise_euclidean(features)
    same = targets[:, None] == targets[None, :]
    eye = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    pos, neg = same & ~eye, ~same
    valid = pos.any(dim=1) & neg.any(dim=1)
    if not valid.any():
        return features.sum() * 0.0
    d_ap = dist.masked_fill(~pos, float("-inf")).max(dim=1).values
    d_an = dist.masked_fill(~neg, float("inf")).min(dim=1).values
    return F.relu(d_ap - d_an + margin)[valid].mean()

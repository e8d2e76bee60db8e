"""GCL+ identity mixing: D-Mixup (identity codes through G), Mixup (pixels), F-Mixup (features).

One draw per batch: lambda ~ Beta(alpha, alpha) folded to lambda >= 0.5 (so the first image's
identity dominates and its structure is kept), and a random permutation pi of the batch. The
soft target is lambda * onehot(y) + (1 - lambda) * onehot(y[pi]) (docs/method.md#d-mixup).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MIXUP_KINDS = ("d_mixup", "mixup", "f_mixup", "none")


@dataclass(frozen=True)
class MixDraw:
    lam: float
    perm: torch.Tensor


def draw_mix(batch_size: int, alpha: float) -> MixDraw:
    """lambda = max(l, 1-l), l ~ Beta(alpha, alpha), and a random batch permutation.

    Draws from torch's global RNG, which the trainers seed and checkpoint (exact resume).
    """
    a = torch.tensor(float(alpha))
    lam = float(torch.distributions.Beta(a, a).sample())
    perm = torch.randperm(batch_size)
    return MixDraw(lam=max(lam, 1.0 - lam), perm=perm)


def mix(values: torch.Tensor, draw: MixDraw) -> torch.Tensor:
    """lambda * v + (1 - lambda) * v[pi]: the same rule for codes, pixels and features."""
    return draw.lam * values + (1.0 - draw.lam) * values[draw.perm.to(values.device)]


def soft_targets(labels: torch.Tensor, draw: MixDraw, num_classes: int) -> torch.Tensor:
    one = F.one_hot(labels.long(), num_classes).float()
    return draw.lam * one + (1.0 - draw.lam) * one[draw.perm.to(labels.device)]

"""Pooling and batch-norm helpers for the identity encoder.

``GeneralizedMeanPooling`` is Cluster-Contrast's learnable GeM (p starts at 3).
``GhostBatchNorm`` normalises each group of ``group_size`` images with its own statistics, so a
single device reproduces the published recipe's per-GPU BN (4 GPUs x 64 images): with one big
batch, BN statistics change and single-GPU reproductions lose up to 20 mAP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class GeneralizedMeanPooling(nn.Module):
    """Global GeM pooling ``(mean x^p)^(1/p)`` with a learnable exponent ``p``."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p)


def global_pool(kind: str) -> nn.Module:
    if kind == "avg":
        return nn.AdaptiveAvgPool2d(1)
    if kind == "gem":
        return GeneralizedMeanPooling()
    raise ValueError(f"pooling must be 'avg' or 'gem', got {kind!r}")


class GhostBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics come from groups of ``group_size`` samples.

    Each group is normalised with its own mean/variance (exactly like one GPU of a multi-GPU run
    without SyncBN); the running statistics move by the average of the groups' updates.
    ``group_size`` 0 (or >= batch) is plain BatchNorm. Parameters and buffers are those of
    ``nn.BatchNorm{1,2}d``, so state dicts are interchangeable.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, group_size: int = 0, ndim: int = 4):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.group_size = group_size
        self.ndim = ndim

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != self.ndim:
            raise ValueError(f"expected {self.ndim}D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.group_size
        if not self.training or g <= 0 or x.shape[0] <= g:
            return super().forward(x)
        self._check_input_dim(x)
        factor = 0.0
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        chunks = torch.split(x, g)
        outs, means, vars_ = [], [], []
        for chunk in chunks:
            rm = self.running_mean.clone() if self.running_mean is not None else None
            rv = self.running_var.clone() if self.running_var is not None else None
            outs.append(F.batch_norm(chunk, rm, rv, self.weight, self.bias, True, factor, self.eps))
            means.append(rm)
            vars_.append(rv)
        if self.running_mean is not None:
            with torch.no_grad():
                self.running_mean.copy_(torch.stack(means).mean(0))
                self.running_var.copy_(torch.stack(vars_).mean(0))
        return torch.cat(outs)


def set_bn_group_size(model: nn.Module, group_size: int) -> nn.Module:
    """Replace every BatchNorm1d/2d in ``model`` by :class:`GhostBatchNorm` with ``group_size``
    (in place, weights and running statistics kept); calling it again only changes the size."""
    for name, child in list(model.named_children()):
        if isinstance(child, GhostBatchNorm):
            child.group_size = group_size
        elif isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            ghost = GhostBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats, group_size,
                                   ndim=2 if isinstance(child, nn.BatchNorm1d) else 4)
            ghost.load_state_dict(child.state_dict())
            ghost.to(next(iter(child.state_dict().values())).device if child.state_dict() else "cpu")
            ghost.train(child.training)
            setattr(model, name, ghost)
        else:
            set_bn_group_size(child, group_size)
    return model

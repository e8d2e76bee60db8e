"""The one learning-rate rule of every stage: step decay by epoch, plus an optional warm start.

``lr(epoch, iteration) = base * gamma`` once per milestone reached (repeated multiplication, the
same floats as ``torch.optim.lr_scheduler.StepLR``), or ``warm_lr`` for the first ``warm_iters``
iterations of the optimisers listed in ``warm``; optimisers left out of ``decays`` keep their base
LR. Stage 1 steps every ``step_size`` epochs
(Cluster-Contrast), stage 2 is constant, stage 3 drops once at ``step_epoch`` (authors' code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class StepSchedule:
    base: dict[str, float]  # optimiser name -> base LR
    gamma: float = 0.1
    milestones: Sequence[int] = ()
    warm_iters: int = 0
    warm_lr: float | None = None
    warm: Sequence[str] = field(default_factory=tuple)
    decays: Sequence[str] | None = None  # optimisers that follow the milestones; None = all of them

    @staticmethod
    def every(step_size: int, epochs: int) -> list[int]:
        """Milestones of a periodic decay (StepLR) within ``epochs``."""
        return list(range(step_size, epochs, step_size))

    def factor(self, epoch: int) -> float:
        f = 1.0
        for m in self.milestones:
            if epoch >= m:
                f *= self.gamma
        return f

    def lr(self, name: str, epoch: int, iteration: int) -> float:
        if name in self.warm and iteration < self.warm_iters and self.warm_lr:
            return self.warm_lr
        v = self.base[name]
        if self.decays is not None and name not in self.decays:
            return v
        for m in self.milestones:
            if epoch >= m:
                v *= self.gamma
        return v

    def apply(self, optimisers: dict[str, torch.optim.Optimizer], epoch: int, iteration: int) -> None:
        for name, opt in optimisers.items():
            value = self.lr(name, epoch, iteration)
            for group in opt.param_groups:
                group["lr"] = value

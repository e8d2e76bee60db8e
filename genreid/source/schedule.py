"""The strong baseline's learning rate: linear warm-up, then step decay at milestones (MMT's
``WarmupMultiStepLR``, stepped per epoch; BoT section 4.1)."""

from __future__ import annotations

from dataclasses import dataclass

from genreid.engine.schedule import StepSchedule


@dataclass
class WarmupMultiStep(StepSchedule):
    """``base * g * w(epoch)``: ``g = gamma ** (milestones reached)``; during the first ``warmup_epochs``
    ``w = warmup_factor * (1 - a) + a`` with ``a = epoch / warmup_epochs``, else 1."""

    warmup_epochs: int = 0
    warmup_factor: float = 1.0

    def factor(self, epoch: int) -> float:
        f = super().factor(epoch)
        if epoch < self.warmup_epochs:
            a = epoch / self.warmup_epochs
            f *= self.warmup_factor * (1.0 - a) + a
        return f

    def lr(self, name: str, epoch: int, iteration: int) -> float:
        return self.base[name] * self.factor(epoch)

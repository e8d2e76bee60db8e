"""The engine's hooks: LR schedule, progress log, periodic checkpoints, fault points, validation
with best-model selection, dvclive logging. :func:`default_hooks` is the order every stage uses."""

from __future__ import annotations

import logging
import time
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from genreid.engine.evaluate import validate
from genreid.engine.live import open_live
from genreid.engine.schedule import StepSchedule
from genreid.engine.trainer import Hook, Trainer
from genreid.utils.faults import fault_point

log = logging.getLogger(__name__)


class LRSchedule(Hook):
    """Sets every optimiser's LR before each step from the one :class:`StepSchedule`."""

    def __init__(self, schedule: StepSchedule):
        self.schedule = schedule

    def before_step(self, trainer: Trainer) -> None:
        self.schedule.apply(trainer.step.optimisers(), trainer.epoch, trainer.iteration)

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None:
        record["lr_factor"] = self.schedule.factor(trainer.epoch)


class ProgressLog(Hook):
    """A progress line every ``every`` iterations: epoch, iteration, losses, rate and time left."""

    def __init__(self, every: int):
        self.every = max(1, every)
        self._t0 = time.perf_counter()
        self._start_it = 0

    def before_train(self, trainer: Trainer) -> None:
        self._t0, self._start_it = time.perf_counter(), trainer.iteration

    def after_step(self, trainer: Trainer, parts: dict[str, float]) -> None:
        if not trainer.info.is_main or trainer.iteration % self.every:
            return
        rate = (trainer.iteration - self._start_it) / max(1e-9, time.perf_counter() - self._t0)
        left = (trainer.epochs - trainer.epoch) * trainer.epoch_length - trainer.iter_in_epoch
        eta = f"{left / rate / 60:.1f} min" if rate > 0 else "?"
        log.info("%s epoch %d/%d it %d/%d (%.2f it/s, ~%s left)  %s", trainer.step.name, trainer.epoch + 1,
                 trainer.epochs, trainer.iter_in_epoch, trainer.epoch_length, rate, eta,
                 "  ".join(f"{k} {v:.3f}" for k, v in parts.items()))


class PeriodicCheckpoint(Hook):
    def __init__(self, every_iters: int | None):
        self.every = every_iters

    def after_step(self, trainer: Trainer, parts: dict[str, float]) -> None:
        if self.every and trainer.iteration % self.every == 0:
            trainer.save_checkpoint()


class FaultPoint(Hook):
    """``<stage>.iter`` after each step and its checkpoint: where the reliability suite SIGKILLs."""

    def after_step(self, trainer: Trainer, parts: dict[str, float]) -> None:
        fault_point(f"{trainer.step.stage or trainer.step.name}.iter")


class Validation(Hook):
    """Validation mAP/R1 every ``every`` epochs and after the last; offers it to the best-model tracker."""

    def __init__(self, model: nn.Module, val_set: Dataset | None, every: int, batch_size: int,
                 num_workers: int = 0, fix: str = "lower the learning rate"):
        self.model, self.val_set, self.every = model, val_set, every
        self.batch_size, self.num_workers, self.fix = batch_size, num_workers, fix

    def due(self, trainer: Trainer) -> bool:
        last = trainer.epoch + 1 == trainer.epochs
        return self.val_set is not None and ((trainer.epoch + 1) % self.every == 0 or last)

    def run(self, trainer: Trainer, where: str) -> dict[str, float]:
        return validate(self.model, self.val_set, trainer.info, self.batch_size, self.num_workers, where, self.fix)

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if not self.due(trainer):
            return
        val = self.run(trainer, f"after epoch {trainer.epoch}")
        record.update(val_mAP=val["mAP"], val_R1=val["R1"])
        if trainer.best is not None:
            trainer.best.offer(trainer.epoch, val["mAP"])


def live_name(key: str) -> str:
    """dvclive metric names: loss/<term>, val/<metric>, pseudo/<quality>, and plain names."""
    for prefix, folder in (("val_", "val/"), ("pseudo_", "pseudo/")):
        if key.startswith(prefix):
            return folder + key[len(prefix):]
    return key if key in ("lr", "lr_factor") else f"loss/{key}"


class LiveLog(Hook):
    """Per-epoch metrics with dvclive (rank 0). The log is rebuilt from the checkpoint's history on
    every start, so it always mirrors the checkpoint, even after a kill between the two."""

    def __init__(self) -> None:
        self.live = None

    def before_train(self, trainer: Trainer) -> None:
        if trainer.info.is_main:
            self.live = open_live(trainer.results_dir, resume=False)
            for record in trainer.history:
                self._log(record)

    def _log(self, record: dict[str, Any]) -> None:
        for k, v in record.items():
            if k not in ("epoch", "iterations") and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.live.log_metric(live_name(k), float(v))
        self.live.next_step()

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.live is not None:
            self._log(record)

    def after_train(self, trainer: Trainer) -> None:
        if self.live is not None:
            self.live.end()


def default_hooks(schedule: StepSchedule, *, checkpoint_every_iters: int | None, log_every: int,
                  validation: Validation | None) -> list[Hook]:
    hooks: list[Hook] = [LRSchedule(schedule), ProgressLog(log_every), PeriodicCheckpoint(checkpoint_every_iters),
                         FaultPoint()]
    if validation is not None:
        hooks.append(validation)
    return [*hooks, LiveLog()]

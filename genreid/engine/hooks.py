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
from genreid.engine.selection import BestModel
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
    """A progress line every ``every`` iterations (``runtime.log_every``): epoch, iteration, each loss
    as its running mean over the epoch so far (one iteration's value jumps with the batch), rate and
    time left."""

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
                 "  ".join(f"{k} {v:.3f}" for k, v in running_means(trainer).items()))


def running_means(trainer: Trainer) -> dict[str, float]:
    """Each loss term's mean over the iterations of this epoch so far (restored with the checkpoint)."""
    return {k: total / count for k, (total, count) in trainer.counters.sums.items() if count}


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


class EpochSummary(Hook):
    """One line per epoch (rank 0): mean losses, clusters and outliers of the pseudo-labels, validation
    mAP/R1 and the best validation mAP so far with its epoch (what the selected encoder will be)."""

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if trainer.info.is_main:
            log.info("%s", epoch_line(trainer.step.name, trainer.epoch, trainer.epochs, record, trainer.best))


def epoch_line(name: str, epoch: int, epochs: int, record: dict[str, Any], best: BestModel | None) -> str:
    """``warmup epoch 3/50: loss 1.234 | 512 clusters, 80 outliers (4.1%) | val mAP 61.2% R1 80.1% | best mAP
    61.2% (epoch 3)``; the parts a stage does not have are left out."""
    skip = {"epoch", "iterations", "lr", "lr_factor"}
    losses = [f"{k} {v:.3f}" for k, v in record.items()
              if k not in skip and not k.startswith(("pseudo_", "val_")) and isinstance(v, (int, float))]
    parts = [f"{name} epoch {epoch + 1}/{epochs}: " + ("  ".join(losses) if losses else "done")]
    if "pseudo_num_clusters" in record:
        outliers = f", {record['pseudo_num_outliers']:.0f} outliers" if "pseudo_num_outliers" in record else ""
        ratio = f" ({100 * record['pseudo_outlier_ratio']:.1f}%)" if "pseudo_outlier_ratio" in record else ""
        parts.append(f"{record['pseudo_num_clusters']:.0f} clusters{outliers}{ratio}")
    if "val_mAP" in record:
        parts.append(f"val mAP {100 * record['val_mAP']:.1f}% R1 {100 * record['val_R1']:.1f}%")
    if best is not None and best.val_map is not None:
        parts.append(f"best mAP {100 * best.val_map:.1f}% (epoch {best.epoch + 1})")
    return " | ".join(parts)


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
    return [*hooks, EpochSummary(), LiveLog()]

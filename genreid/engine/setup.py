"""What every training stage does first and last, in one place.

First (:func:`start_run`): join the process group, check the P x K batch split, seed, build the
mixed-precision context. The order is part of the result (the RNG streams start at the seed), so
stages call it rather than repeating its lines. :func:`begin_training` adds what the four trainers
(source, warm-up, generator pre-training, joint training) built alike around it: the training and
validation images at network size; the returned :class:`TrainingRun` builds the validation hook and
runs the :class:`~genreid.engine.trainer.Trainer` with the default hooks, so a runner keeps only its
networks, its step and its LR rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd
import torch
from torch import nn

from genreid.data.loader import ImageDataset
from genreid.engine import dist
from genreid.engine.amp import AmpContext
from genreid.engine.batches import image_dataset
from genreid.engine.context import RunContext, RuntimeFlags, StepEnv
from genreid.engine.hooks import Validation, default_hooks
from genreid.engine.schedule import StepSchedule
from genreid.engine.selection import BestModel
from genreid.engine.trainer import Trainer, TrainStep
from genreid.errors import ConfigError
from genreid.utils.seeding import seed_everything, stream_seed


class TrainingSection(Protocol):
    """The keys of a trainer's config section (``source``, ``warmup``, ``pretrain``, ``train``) the engine
    reads; ``eval_every`` and ``extract_batch_size`` only where the stage validates."""

    epochs: int
    checkpoint_every_iters: int | None


def check_pk_split(section: str, batch_size: int, num_instances: int, world_size: int) -> None:
    """A P x K batch must split into whole groups of ``num_instances`` on every process."""
    if batch_size % (world_size * num_instances):
        raise ConfigError(f"{section}.batch_size {batch_size} must split into {world_size} process(es) x "
                          f"groups of {section}.num_instances {num_instances}", "change batch_size or num_instances")


def start_run(device: torch.device | str, runtime: RuntimeFlags, seed: int, *, stage: str,
              pk_split: tuple[str, int, int] | None = None) -> tuple[dist.DistInfo, AmpContext]:
    """Initialise distributed training (one process when not under ``torchrun``), check the P x K split
    ``pk_split = (section, batch_size, num_instances)`` if given, seed every RNG with the stage's
    ``init`` stream, and return the process info with the ``runtime.amp`` / ``channels_last`` /
    activation-checkpointing context."""
    info = dist.init_distributed(device)
    if pk_split is not None:
        check_pk_split(*pk_split, info.world_size)
    seed_everything(stream_seed(seed, stage, 0, "init"), runtime.deterministic)
    amp = AmpContext(info.device, runtime.amp, runtime.channels_last, runtime.activation_checkpointing)
    return info, amp


@dataclass(frozen=True)
class TrainingRun:
    """A started trainer: its context, what its step reads (:class:`StepEnv`), the training split (frame and
    images at network size) and the validation images (None without a validation split)."""

    ctx: RunContext
    env: StepEnv
    train_df: pd.DataFrame
    train_set: ImageDataset
    val_set: ImageDataset | None

    def validation(self, model: nn.Module, section: Any, fix: str) -> Validation | None:
        """Validation mAP of ``model`` every ``section.eval_every`` epochs (None without validation images);
        ``fix`` is what the error of a diverged validation tells the user."""
        if self.val_set is None:
            return None
        return Validation(model, self.val_set, section.eval_every, section.extract_batch_size,
                          self.ctx.runtime.num_workers, fix)

    def fit(self, step: TrainStep, section: TrainingSection, schedule: StepSchedule, *, best: BestModel | None = None,
            validation: Validation | None = None) -> dict[str, Any]:
        """Train ``step`` for ``section.epochs`` with the default hooks (LR rule, progress log, periodic
        checkpoints, fault point, ``validation``, epoch summary, dvclive) and the context's extra hooks;
        checkpoints under ``model_dir/ckpt``, the log under ``results_dir/train``."""
        ctx = self.ctx
        hooks = default_hooks(schedule, checkpoint_every_iters=section.checkpoint_every_iters,
                              log_every=ctx.runtime.log_every, validation=validation) + list(ctx.extra_hooks)
        trainer = Trainer(step, info=self.env.info, epochs=section.epochs, ckpt_dir=ctx.model_dir / "ckpt",
                          results_dir=ctx.results_dir / "train", best=best, hooks=hooks,
                          stop_after_iters=ctx.stop_after_iters)
        return trainer.train()


def begin_training(ctx: RunContext, train_df: pd.DataFrame, val_df: pd.DataFrame | None, *, stage: str,
                   pk_split: tuple[str, int, int] | None = None) -> TrainingRun:
    """:func:`start_run` for ``stage`` (the RNG streams start here), then the training images and, when
    ``val_df`` has rows, the validation images at the context's network size (building them draws no
    random numbers, so the networks a runner builds next start from the same RNG state)."""
    info, amp = start_run(ctx.device, ctx.runtime, ctx.seed, stage=stage, pk_split=pk_split)
    env = StepEnv(info=info, amp=amp, seed=ctx.seed, model_dir=ctx.model_dir, results_dir=ctx.results_dir,
                  num_workers=ctx.runtime.num_workers)
    train_set = image_dataset(train_df, ctx.height, ctx.width)
    val_set = image_dataset(val_df, ctx.height, ctx.width) if val_df is not None and len(val_df) else None
    return TrainingRun(ctx=ctx, env=env, train_df=train_df, train_set=train_set, val_set=val_set)

"""Source pre-training end to end: build the encoder (the warm-up's architecture, so the warm-up can
load it strictly) and the step, train on the labelled source with the shared engine, select on the
source validation split, write ``encoder.pt`` and ``train/summary.json``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from genreid.config.sections.source import SourceConfig
from genreid.engine.context import RunContext
from genreid.engine.selection import BestModel
from genreid.engine.setup import begin_training
from genreid.errors import ConfigError, DataError
from genreid.models.id_encoder import build_encoder
from genreid.source.schedule import WarmupMultiStep
from genreid.source.step import DIVERGED_FIX, SourceNet, SourceStep


def source_schedule(cfg: SourceConfig) -> WarmupMultiStep:
    """The LR rule of ``cfg`` (optimiser name ``encoder``: the step's one Adam)."""
    return WarmupMultiStep({"encoder": cfg.lr}, cfg.lr_gamma, list(cfg.milestones),
                           warmup_epochs=cfg.warmup_epochs, warmup_factor=cfg.warmup_factor)


def train_source(train_df: pd.DataFrame, val_df: pd.DataFrame | None, cfg: SourceConfig,
                 encoder_args: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Train with identity labels, select on validation mAP, write ``ctx.model_dir/encoder.pt`` (the encoder
    only) and ``ctx.results_dir/train/``."""
    if train_df["pid"].min() < 0:
        raise DataError("the source training split holds pid -1 (junk)", "re-run the source's prepare stage")
    num_ids = int(train_df["pid"].max()) + 1
    if num_ids * cfg.num_instances < cfg.batch_size:
        raise ConfigError(f"source.batch_size {cfg.batch_size} needs {cfg.batch_size // cfg.num_instances} "
                          f"identities but the source trains {num_ids}", "lower source.batch_size")
    run = begin_training(ctx, train_df, val_df, stage="source",
                         pk_split=("source", cfg.batch_size, cfg.num_instances))
    net = run.env.amp.module(SourceNet(build_encoder(**encoder_args), num_ids))
    step = SourceStep.from_config(cfg, run, net)
    return run.fit(step, cfg, source_schedule(cfg), best=BestModel(net.encoder, run.val_set is not None),
                   validation=run.validation(net.encoder, cfg, DIVERGED_FIX))

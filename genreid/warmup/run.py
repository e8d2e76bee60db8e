"""Stage 1 end to end: build the encoder and the step from the config sections, train, and write
``encoder.pt`` (the epoch selected on validation mAP) and ``train/summary.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from genreid.config.sections.model import ModelConfig
from genreid.config.sections.warmup import WarmupConfig
from genreid.engine.context import RunContext
from genreid.engine.schedule import StepSchedule
from genreid.engine.selection import BestModel
from genreid.engine.setup import begin_training
from genreid.models.id_encoder import IdEncoder, build_encoder
from genreid.models.layers import set_bn_group_size
from genreid.warmup.imported import use_imported_encoder
from genreid.warmup.iteration import DIVERGED_FIX
from genreid.warmup.source_init import init_from_source
from genreid.warmup.step import WarmupStep


def encoder_kwargs(model: ModelConfig, pooling: str | None) -> dict[str, Any]:
    """The identity encoder's build arguments: ``model`` with the warm-up's pooling (if set) on top."""
    return {"backbone": model.backbone, "pretrained": model.pretrained, "pooling": pooling or model.pooling,
            "embedding_dim": model.embedding_dim, "last_stride": model.last_stride, "stripes": model.stripes}


def warmup_encoder(model_cfg: ModelConfig, cfg: WarmupConfig, init_encoder: str | Path | None = None) -> IdEncoder:
    """Stage 1's encoder: built from ``model`` (+ warm-up pooling, BN groups), or the source encoder's
    weights loaded strictly when ``init_encoder`` is given (no ImageNet download then: it is overwritten)."""
    kwargs = encoder_kwargs(model_cfg, cfg.pooling)
    if init_encoder is not None:
        kwargs["pretrained"] = "none"
    encoder = set_bn_group_size(build_encoder(**kwargs), cfg.bn_group_size)
    if init_encoder is not None:
        init_from_source(encoder, init_encoder)
    return encoder


def train_warmup(train_df: pd.DataFrame | None, val_df: pd.DataFrame | None, cfg: WarmupConfig, model_cfg: ModelConfig,
                 ctx: RunContext, init_encoder: str | Path | None = None) -> dict[str, Any]:
    """Train, select on validation mAP, write ``ctx.model_dir/encoder.pt`` and ``ctx.results_dir/train/``.

    ``init_encoder`` (UDA): the source-trained encoder file the warm-up starts from (strict load; a
    resumed run restores its checkpoint over it). With ``warmup.import_encoder`` the imported weights are
    written instead and the frames are not read.
    """
    if cfg.import_encoder:
        return use_imported_encoder(cfg.import_encoder, model_cfg, seed=ctx.seed, model_dir=ctx.model_dir,
                                    results_dir=ctx.results_dir)
    run = begin_training(ctx, train_df, val_df, stage="warmup",
                         pk_split=("warmup", cfg.batch_size, cfg.num_instances))
    encoder = run.env.amp.module(warmup_encoder(model_cfg, cfg, init_encoder))
    step = WarmupStep.from_config(cfg, run, encoder, init_encoder)
    schedule = StepSchedule({"encoder": cfg.lr}, cfg.lr_gamma, StepSchedule.every(cfg.step_size, cfg.epochs))
    return run.fit(step, cfg, schedule, best=BestModel(encoder, run.val_set is not None),
                   validation=run.validation(encoder, cfg, DIVERGED_FIX))

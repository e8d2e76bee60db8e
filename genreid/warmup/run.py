"""Stage 1 end to end: build the encoder and the step from the config sections, train, and write
``encoder.pt`` (the epoch selected on validation mAP) and ``train/summary.json``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genreid.config.schema import RuntimeConfig
from genreid.config.sections.model import ModelConfig
from genreid.config.sections.warmup import WarmupConfig
from genreid.engine.batches import image_dataset
from genreid.engine.hooks import Validation, default_hooks
from genreid.engine.schedule import StepSchedule
from genreid.engine.selection import BestModel
from genreid.engine.setup import start_run
from genreid.engine.trainer import Hook, Trainer
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


def train_warmup(train_df: pd.DataFrame, val_df: pd.DataFrame | None, cfg: WarmupConfig, model_cfg: ModelConfig,
                 runtime: RuntimeConfig, *, seed: int, height: int, width: int, model_dir: str | Path,
                 results_dir: str | Path, device: torch.device | str = "cpu",
                 stop_after_iters: int | None = None, extra_hooks: Sequence[Hook] = (),
                 init_encoder: str | Path | None = None) -> dict[str, Any]:
    """Train, select on validation mAP, write ``model_dir/encoder.pt`` and ``results_dir/train/``.

    ``init_encoder`` (UDA): the source-trained encoder file the warm-up starts from (strict load; a
    resumed run restores its checkpoint over it).

    ``stop_after_iters`` checkpoints and returns after that many iterations of this call, exactly
    what a kill right after a checkpoint leaves (tests use it).
    """
    if cfg.import_encoder:
        return use_imported_encoder(cfg.import_encoder, model_cfg, seed=seed, model_dir=Path(model_dir),
                                    results_dir=Path(results_dir))
    info, amp = start_run(device, runtime, seed, stage="warmup", pk_split=("warmup", cfg.batch_size, cfg.num_instances))
    model_dir, results_dir = Path(model_dir), Path(results_dir)
    encoder = amp.module(warmup_encoder(model_cfg, cfg, init_encoder))
    train_set = image_dataset(train_df, height, width)
    val_set = image_dataset(val_df, height, width) if val_df is not None and len(val_df) else None
    step = WarmupStep(cfg, seed=seed, encoder=encoder, dataset=train_set,
                      camids=train_df["camid"].to_numpy(dtype=np.int64),
                      true_ids=train_df["pid"].to_numpy(dtype=np.int64), info=info, amp=amp, model_dir=model_dir,
                      results_dir=results_dir, num_workers=runtime.num_workers,
                      extra={"initialised_from": Path(init_encoder).as_posix()} if init_encoder is not None else None)
    schedule = StepSchedule({"encoder": cfg.lr}, cfg.lr_gamma, StepSchedule.every(cfg.step_size, cfg.epochs))
    validation = Validation(encoder, val_set, cfg.eval_every, cfg.extract_batch_size, runtime.num_workers,
                            DIVERGED_FIX) if val_set is not None else None
    trainer = Trainer(step, info=info, epochs=cfg.epochs, ckpt_dir=model_dir / "ckpt",
                      results_dir=results_dir / "train", best=BestModel(encoder, val_set is not None),
                      hooks=default_hooks(schedule, checkpoint_every_iters=cfg.checkpoint_every_iters,
                                          log_every=runtime.log_every, validation=validation) + list(extra_hooks),
                      stop_after_iters=stop_after_iters)
    return trainer.train()

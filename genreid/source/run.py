"""Source pre-training end to end: build the encoder (the warm-up's architecture, so the warm-up can
load it strictly) and the step, train on the labelled source with the shared engine, select on the
source validation split, write ``encoder.pt`` and ``train/summary.json``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genreid.config.schema import RuntimeConfig
from genreid.config.sections.source import SourceConfig
from genreid.engine.batches import image_dataset
from genreid.engine.hooks import Validation, default_hooks
from genreid.engine.selection import BestModel
from genreid.engine.setup import start_run
from genreid.engine.trainer import Hook, Trainer
from genreid.errors import ConfigError, DataError
from genreid.models.id_encoder import build_encoder
from genreid.source.schedule import WarmupMultiStep
from genreid.source.step import DIVERGED_FIX, SourceNet, SourceStep


def source_schedule(cfg: SourceConfig) -> WarmupMultiStep:
    """The LR rule of ``cfg`` (optimiser name ``encoder``: the step's one Adam)."""
    return WarmupMultiStep({"encoder": cfg.lr}, cfg.lr_gamma, list(cfg.milestones),
                           warmup_epochs=cfg.warmup_epochs, warmup_factor=cfg.warmup_factor)


def train_source(train_df: pd.DataFrame, val_df: pd.DataFrame | None, cfg: SourceConfig,
                 encoder_args: dict[str, Any], runtime: RuntimeConfig, *, seed: int, height: int, width: int,
                 model_dir: str | Path, results_dir: str | Path, device: torch.device | str = "cpu",
                 stop_after_iters: int | None = None, extra_hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train with identity labels, select on validation mAP, write ``model_dir/encoder.pt`` (the encoder
    only) and ``results_dir/train/``. ``stop_after_iters``: checkpoint and return (a kill, for tests)."""
    if train_df["pid"].min() < 0:
        raise DataError("the source training split holds pid -1 (junk)", "re-run the source's prepare stage")
    num_ids = int(train_df["pid"].max()) + 1
    if num_ids * cfg.num_instances < cfg.batch_size:
        raise ConfigError(f"source.batch_size {cfg.batch_size} needs {cfg.batch_size // cfg.num_instances} "
                          f"identities but the source trains {num_ids}", "lower source.batch_size")
    info, amp = start_run(device, runtime, seed, stage="source", pk_split=("source", cfg.batch_size, cfg.num_instances))
    model_dir, results_dir = Path(model_dir), Path(results_dir)
    net = amp.module(SourceNet(build_encoder(**encoder_args), num_ids))
    train_set = image_dataset(train_df, height, width)
    val_set = image_dataset(val_df, height, width) if val_df is not None and len(val_df) else None
    step = SourceStep(cfg, seed=seed, net=net, dataset=train_set, pids=train_df["pid"].to_numpy(dtype=np.int64),
                      camids=train_df["camid"].to_numpy(dtype=np.int64), info=info, amp=amp, model_dir=model_dir,
                      results_dir=results_dir, num_workers=runtime.num_workers)
    validation = Validation(net.encoder, val_set, cfg.eval_every, cfg.extract_batch_size, runtime.num_workers,
                            DIVERGED_FIX) if val_set is not None else None
    trainer = Trainer(step, info=info, epochs=cfg.epochs, ckpt_dir=model_dir / "ckpt",
                      results_dir=results_dir / "train", best=BestModel(net.encoder, val_set is not None),
                      hooks=default_hooks(source_schedule(cfg), checkpoint_every_iters=cfg.checkpoint_every_iters,
                                          log_every=runtime.log_every, validation=validation) + list(extra_hooks),
                      stop_after_iters=stop_after_iters)
    return trainer.train()


"""Stage 1's step (docs/method.md#stage-1-baseline-cluster-contrast): Cluster-Contrast on the identity encoder.

Each epoch: features of all training images -> k-reciprocal Jaccard -> DBSCAN pseudo-labels
(outliers dropped; quality logged, true ids never used) -> cluster memory from the centroids ->
``iters_per_epoch`` PK batches, loss ``CE(f C^T / tau)``, Adam, memory update after each step.
BN statistics come from groups of ``bn_group_size`` images (ghost BN), so one device reproduces
the published 4 GPUs x 64 recipe. The epoch's batches, loader and augmentation draws come from
:func:`genreid.utils.seeding.stream_seed` of (seed, epoch): a resumed epoch repeats.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genreid.cluster import ClusterSettings, cluster_features
from genreid.config.sections.warmup import WarmupConfig
from genreid.engine import dist
from genreid.engine.batches import batch_loader
from genreid.engine.context import StepEnv
from genreid.engine.evaluate import extract_all
from genreid.engine.outputs import write_selected_encoder
from genreid.engine.selection import Selection
from genreid.engine.setup import TrainingRun
from genreid.engine.trainer import Trainer, TrainStep
from genreid.errors import GenreidError
from genreid.memory.cluster_memory import ClusterMemory
from genreid.memory.labels import EpochLabels
from genreid.utils.seeding import seed_global_rngs, stream_seed
from genreid.warmup.batches import augment_batch, pk_batches
from genreid.warmup.iteration import DIVERGED_FIX, WarmupBatch, micro_batch_size, warmup_iteration

log = logging.getLogger(__name__)


class WarmupStep(TrainStep):
    name = "warmup"

    def __init__(self, cfg: WarmupConfig, env: StepEnv, encoder: nn.Module, dataset: Any, camids: np.ndarray,
                 true_ids: np.ndarray | None, extra: dict[str, Any] | None = None):
        """``true_ids`` only grade the pseudo-labels in the log; ``extra`` goes into encoder.pt's record."""
        self.extra = extra
        self.cfg, self.env, self.seed, self.info, self.amp = cfg, env, env.seed, env.info, env.amp
        micro_batch_size(cfg.micro_batch, cfg.bn_group_size)  # refuse a bad combination before any work
        self.encoder, self.model = encoder, dist.wrap(encoder, env.info)
        self.dataset, self.camids, self.true_ids = dataset, camids, true_ids
        self.optimizer = torch.optim.Adam(encoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.memory = ClusterMemory(encoder.embedding_dim, cfg.momentum).to(env.info.device)
        self.labels = EpochLabels()

    @classmethod
    def from_config(cls, cfg: WarmupConfig, run: TrainingRun, encoder: nn.Module,
                    init_encoder: str | Path | None = None) -> WarmupStep:
        """The step on ``run``'s training split; ``init_encoder`` (UDA): the source encoder the weights
        started from, recorded in encoder.pt."""
        df = run.train_df
        extra = {"initialised_from": Path(init_encoder).as_posix()} if init_encoder is not None else None
        return cls(cfg, run.env, encoder, run.train_set, camids=df["camid"].to_numpy(dtype=np.int64),
                   true_ids=df["pid"].to_numpy(dtype=np.int64), extra=extra)

    def state(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "optimizer": self.optimizer, "scaler": self.amp, "memory": self.memory,
                "labels": self.labels}

    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {"encoder": self.optimizer}

    def buffered_modules(self) -> list[nn.Module]:
        return [self.encoder]

    def begin_epoch(self, trainer: Trainer, epoch: int, fresh: bool) -> None:
        if fresh:
            seed_global_rngs(stream_seed(self.seed, self.name, epoch, "draws", self.info.rank))
            self._cluster(epoch)
        self.model.train()

    def _cluster(self, epoch: int) -> None:
        c = self.cfg.cluster
        feats = extract_all(self.encoder, self.dataset, self.info, self.cfg.extract_batch_size, self.env.num_workers,
                            f"at the start of warm-up epoch {epoch}", DIVERGED_FIX)
        eps, rho = c.eps_and_rho()
        settings = ClusterSettings(eps=eps, rho=rho, min_samples=c.min_samples, k1=c.k1, k2=c.k2)
        labels, quality = cluster_features(feats.features, settings, true_ids=self.true_ids,
                                           camids=self.camids if c.camera_norm else None)
        labels = dist.broadcast_array(labels, self.info)
        if quality["num_clusters"] == 0:
            raise GenreidError(
                f"warm-up epoch {epoch}: DBSCAN found no cluster among {len(labels)} training images "
                f"(eps {quality['eps']:.3f}, min_samples {c.min_samples}); training cannot continue",
                "raise warmup.cluster.eps (or use warmup.cluster.eps_rule: rho) or lower warmup.cluster.min_samples")
        if quality["largest_cluster"] > 0.5 * len(labels):
            log.warning("epoch %d: one cluster holds %d of %d images (eps too large or features collapsed)",
                        epoch, quality["largest_cluster"], len(labels))
        self.memory.reset(feats.features.to(self.info.device), torch.from_numpy(labels))
        self.labels.set(labels, quality)

    def batches(self, trainer: Trainer, epoch: int) -> list[list[int]]:
        return pk_batches(self.labels.labels, self.camids, self.cfg.batch_size, self.cfg.num_instances,
                          stream_seed(self.seed, self.name, epoch, "batches"), self.cfg.iters_per_epoch,
                          self.cfg.sampler)

    def loader(self, trainer: Trainer, batches: list[list[int]], epoch: int):
        return batch_loader(self.dataset, batches, stream_seed(self.seed, self.name, epoch, "loader"),
                            self.env.num_workers, pin_memory=self.info.device.type == "cuda")

    def run_step(self, trainer: Trainer, batch: dict) -> dict[str, float]:
        targets = torch.from_numpy(self.labels.labels[batch["index"].numpy()]).to(self.info.device)
        images = augment_batch(batch["image"]) if self.cfg.augment else batch["image"]
        batch = WarmupBatch(images, targets, micro_batch_size(self.cfg.micro_batch, self.cfg.bn_group_size))
        return warmup_iteration(self.model, self.optimizer, self.memory, self.amp, batch, self.cfg.temperature,
                                f"warm-up epoch {trainer.epoch} iteration {trainer.iteration}", self.info)

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        return {"lr": self.optimizer.param_groups[0]["lr"], **self.labels.record()}

    def finish(self, trainer: Trainer, selection: Selection) -> dict[str, Any]:
        return write_selected_encoder(trainer, selection, self.encoder, self.env, method="cluster_contrast_warmup",
                                      batch_size=self.cfg.batch_size, extra=self.extra)

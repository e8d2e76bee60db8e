"""Stage 1's step (METHOD.md section 7): Cluster-Contrast on the identity encoder.

Each epoch: features of all training images -> k-reciprocal Jaccard -> DBSCAN pseudo-labels
(outliers dropped; quality logged, true ids never used) -> cluster memory from the centroids ->
``iters_per_epoch`` PK batches, loss ``CE(f C^T / tau)``, Adam, memory update after each step.
BN statistics come from groups of ``bn_group_size`` images (ghost BN), so one device reproduces
the published 4 GPUs x 64 recipe. The epoch's seed comes from (seed, epoch): a resumed epoch repeats.
"""

from __future__ import annotations

import contextlib
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from genreid.cluster import cluster_features
from genreid.config.sections.warmup import WarmupConfig
from genreid.engine import dist
from genreid.engine.amp import AmpContext
from genreid.engine.batches import batch_loader
from genreid.engine.evaluate import extract_all
from genreid.engine.guards import assert_finite
from genreid.engine.outputs import write_selected_encoder
from genreid.engine.selection import Selection
from genreid.engine.trainer import Trainer, TrainStep
from genreid.errors import ConfigError, GenreidError
from genreid.losses.cluster_contrast import cluster_contrast_loss
from genreid.memory.cluster_memory import ClusterMemory
from genreid.memory.labels import EpochLabels
from genreid.warmup.batches import augment_batch, epoch_seed, pk_batches

log = logging.getLogger(__name__)
DIVERGED_FIX = "lower warmup.lr (the loss or features became NaN/inf), then rerun"


def micro_batch_size(micro_batch: int, bn_group_size: int) -> int:
    """Images per forward/backward pass; 0 = the whole batch. With BN groups the micro-batch must hold
    whole groups, else BatchNorm would see other statistics than in one pass."""
    if micro_batch and bn_group_size <= 0:
        raise ConfigError(f"warmup.micro_batch {micro_batch} needs BatchNorm groups (warmup.bn_group_size > 0): "
                          "with whole-batch statistics a micro-batch would change them",
                          "set warmup.bn_group_size (e.g. 64) or warmup.micro_batch: 0")
    if micro_batch and micro_batch % bn_group_size:
        raise ConfigError(f"warmup.micro_batch {micro_batch} is not a multiple of warmup.bn_group_size "
                          f"{bn_group_size}", "choose a multiple of bn_group_size (or 0 for no micro-batching)")
    return micro_batch


def _bn_buffers(model: nn.Module) -> tuple[list[torch.Tensor], int]:
    """Every BatchNorm running buffer of ``model`` and its BN group size (0: whole batch)."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    group = min((getattr(m, "group_size", 0) for m in norms), default=0)
    return [b for m in norms for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None], group


def warmup_iteration(model: nn.Module, optimizer: torch.optim.Optimizer, memory: ClusterMemory, amp: AmpContext,
                     images: torch.Tensor, targets: torch.Tensor, temperature: float, micro_batch: int, where: str,
                     info: dist.DistInfo = dist.DistInfo()) -> dict[str, float]:
    """One optimiser step on this rank's batch; ``micro_batch`` > 0 accumulates gradients over slices.

    The slices give the same update as one pass: the loss is the batch mean (each slice's summed CE
    over the batch size), BN groups never straddle slices, every slice starts from the same BN
    running statistics and they end as the mean of the slices' (what one pass over all groups
    gives), and the memory moves once with the whole batch's features.
    """
    b = images.shape[0]
    if not micro_batch or micro_batch >= b:
        with amp.autocast():
            _, f = model(amp.input(images))
        f = F.normalize(f.float(), dim=1)
        loss = cluster_contrast_loss(f, memory.features, targets, temperature)
        assert_finite({"loss": loss}, where, DIVERGED_FIX, info)
        optimizer.zero_grad(set_to_none=True)
        amp.backward(loss)
    else:
        optimizer.zero_grad(set_to_none=True)
        buffers, group = _bn_buffers(model)
        start = [t.clone() for t in buffers]
        ends: list[list[torch.Tensor]] = []
        feats, total = [], torch.zeros((), device=targets.device)
        slices = list(range(0, b, micro_batch))
        for n, i in enumerate(slices):
            for t, s0 in zip(buffers, start):
                t.copy_(s0)
            sync = n == len(slices) - 1 or not hasattr(model, "no_sync")
            with contextlib.nullcontext() if sync else model.no_sync():
                with amp.autocast():
                    _, f = model(amp.input(images[i:i + micro_batch]))
                f = F.normalize(f.float(), dim=1)
                part = cluster_contrast_loss(f, memory.features, targets[i:i + micro_batch], temperature)
                part = part * (f.shape[0] / b)
                amp.backward(part)
            ends.append([t.clone() for t in buffers])
            feats.append(f.detach())
            total = total + part.detach()
        with torch.no_grad():
            groups = [-(-min(micro_batch, b - i) // group) if group > 0 else 1 for i in slices]
            weights = [g / sum(groups) for g in groups]  # one pass: the mean over all BN groups
            for j, t in enumerate(buffers):
                if t.is_floating_point():
                    t.copy_(sum(w * e[j] for w, e in zip(weights, ends)))
                else:
                    t.copy_(ends[0][j])  # num_batches_tracked: one pass
        f, loss = torch.cat(feats), total
        assert_finite({"loss": loss}, where, DIVERGED_FIX, info)
    amp.step(optimizer)
    amp.update()
    memory.update(dist.all_gather_cat(f.detach(), info), dist.all_gather_cat(targets, info))
    return {"loss": float(loss.detach())}


class WarmupStep(TrainStep):
    name = "warmup"

    def __init__(self, cfg: WarmupConfig, *, seed: int, encoder: nn.Module, dataset: Any, camids: np.ndarray,
                 true_ids: np.ndarray | None, info: dist.DistInfo, amp: AmpContext, model_dir: Path,
                 results_dir: Path, num_workers: int = 0):
        self.cfg, self.seed, self.info, self.amp, self.num_workers = cfg, seed, info, amp, num_workers
        micro_batch_size(cfg.micro_batch, cfg.bn_group_size)  # refuse a bad combination before any work
        self.encoder, self.model = encoder, dist.wrap(encoder, info)
        self.dataset, self.camids, self.true_ids = dataset, camids, true_ids
        self.optimizer = torch.optim.Adam(encoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.memory = ClusterMemory(encoder.embedding_dim, cfg.momentum).to(info.device)
        self.labels = EpochLabels()
        self.model_dir, self.results_dir = model_dir, results_dir

    def state(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "optimizer": self.optimizer, "scaler": self.amp, "memory": self.memory,
                "labels": self.labels}

    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {"encoder": self.optimizer}

    def buffered_modules(self) -> list[nn.Module]:
        return [self.encoder]

    def begin_epoch(self, trainer: Trainer, epoch: int, fresh: bool) -> None:
        if fresh:
            s = epoch_seed(self.seed, epoch, self.info.rank)
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
            self._cluster(epoch)
        self.model.train()

    def _cluster(self, epoch: int) -> None:
        c = self.cfg.cluster
        feats = extract_all(self.encoder, self.dataset, self.info, self.cfg.extract_batch_size, self.num_workers,
                            f"at the start of warm-up epoch {epoch}", DIVERGED_FIX)
        eps, rho = c.eps_and_rho()
        labels, quality = cluster_features(feats.features, eps=eps, rho=rho, min_samples=c.min_samples, k1=c.k1,
                                           k2=c.k2, true_ids=self.true_ids,
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
                          epoch_seed(self.seed, epoch), self.cfg.iters_per_epoch)

    def loader(self, trainer: Trainer, batches: list[list[int]], epoch: int):
        return batch_loader(self.dataset, batches, epoch_seed(self.seed, epoch), self.num_workers,
                            pin_memory=self.info.device.type == "cuda")

    def run_step(self, trainer: Trainer, batch: dict) -> dict[str, float]:
        targets = torch.from_numpy(self.labels.labels[batch["index"].numpy()]).to(self.info.device)
        images = augment_batch(batch["image"]) if self.cfg.augment else batch["image"]
        return warmup_iteration(self.model, self.optimizer, self.memory, self.amp, images, targets,
                                self.cfg.temperature, micro_batch_size(self.cfg.micro_batch, self.cfg.bn_group_size),
                                f"warm-up epoch {trainer.epoch} iteration {trainer.iteration}", self.info)

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        return {"lr": self.optimizer.param_groups[0]["lr"], **self.labels.record()}

    def finish(self, trainer: Trainer, selection: Selection) -> dict[str, Any]:
        return write_selected_encoder(trainer, selection, self.encoder, "cluster_contrast_warmup", seed=self.seed,
                                      batch_size=self.cfg.batch_size, model_dir=self.model_dir,
                                      results_dir=self.results_dir)

"""Stage 3's step: per epoch, pseudo-labels from the instance memory (the method's clustering;
outliers leave the loader but stay in memory as negatives) and the method's epoch state, then one
pass of :func:`joint_iteration` (or, for methods without a generator, :func:`contrastive_iteration`)
over a seeded shuffle of the clustered images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genreid.cluster.pseudo_labels import cluster_features
from genreid.config.sections.gan import TrainConfig
from genreid.engine import dist
from genreid.engine.amp import AmpContext
from genreid.engine.batches import batch_loader, cap_batches, epoch_batches
from genreid.engine.evaluate import extract_all
from genreid.engine.hooks import Validation
from genreid.engine.outputs import write_selected_encoder
from genreid.engine.selection import Selection
from genreid.engine.trainer import Trainer, TrainStep
from genreid.errors import TrainingDiverged
from genreid.gan.nets import GanNets
from genreid.gan.renders import view_inputs
from genreid.joint.iteration import (
    DIVERGED_FIX,
    EncoderNets,
    JointBatch,
    Optimisers,
    contrastive_iteration,
    joint_iteration,
)
from genreid.joint.methods import JointMethod
from genreid.memory.instance_memory import InstanceMemory
from genreid.memory.labels import EpochLabels
from genreid.meshes.store import RenderStore


class JointStep(TrainStep):
    stage = "train"
    def __init__(self, cfg: TrainConfig, method: JointMethod, *, seed: int, nets: GanNets | EncoderNets,
                 opts: Optimisers, dataset: Any, store: RenderStore | None, camids: np.ndarray,
                 true_ids: np.ndarray, info: dist.DistInfo, amp: AmpContext, validation: Validation | None,
                 model_dir: Path, results_dir: Path, num_workers: int = 0):
        self.cfg, self.method, self.seed, self.nets, self.opts = cfg, method, seed, nets, opts
        self.name = method.name
        self.dataset, self.store, self.camids, self.true_ids = dataset, store, camids, true_ids
        self.info, self.amp, self.validation, self.num_workers = info, amp, validation, num_workers
        self.model_dir, self.results_dir = model_dir, results_dir
        self.memory = InstanceMemory(len(dataset), nets.id_encoder.embedding_dim).to(info.device)
        self.labels = EpochLabels()
        self.weights = cfg.weights.model_dump()

    def state(self) -> dict[str, Any]:
        """Only what exists: the generator's networks and optimisers for GCL / GCL+ alone."""
        n = self.nets
        nets = {"id_encoder": n.id_encoder}
        if isinstance(n, GanNets):
            nets.update(str_encoder=n.str_encoder, decoder=n.decoder, discriminator=n.discriminator)
        return {**nets, **{f"opt_{k}": v for k, v in self.optimisers().items()},
                "scaler": self.amp, "memory": self.memory, "labels": self.labels, "method": self.method}

    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opts.named()

    def buffered_modules(self) -> list[torch.nn.Module]:
        return [self.nets.id_encoder]

    def before_train(self, trainer: Trainer) -> None:
        """Memory from E_id's features (authors' code) and the starting point's validation mAP."""
        if self.cfg.memory_init == "encoder":
            feats = extract_all(self.nets.id_encoder, self.dataset, self.info, self.cfg.extract_batch_size,
                                self.num_workers, "of the starting encoder", DIVERGED_FIX)
            self.memory.initialise(feats.features.to(self.info.device))
        if self.validation is not None:
            start = self.validation.run(trainer, "of the starting encoder")
            trainer.history.append({"epoch": -1, "val_mAP": start["mAP"], "val_R1": start["R1"]})

    def begin_epoch(self, trainer: Trainer, epoch: int, fresh: bool) -> None:
        if fresh:
            self.labels.set(*self._pseudo_labels(epoch))
        self.memory.set_labels(torch.from_numpy(self.labels.labels))
        if fresh:
            self.method.begin_epoch(self.memory)
        self.label_t = torch.from_numpy(self.labels.labels).to(self.info.device)

    def _pseudo_labels(self, epoch: int) -> tuple[np.ndarray, dict[str, Any]]:
        c, key = self.method.cluster, self.method.cluster_key
        eps, rho = c.eps_and_rho()
        labels, quality = cluster_features(self.memory.features.cpu(), eps=eps, rho=rho, min_samples=c.min_samples,
                                           k1=c.k1, k2=c.k2, true_ids=self.true_ids,
                                           camids=self.camids if c.camera_norm else None)
        clustered, batch = int((labels >= 0).sum()), self.cfg.batch_size
        if len(labels) < batch:
            raise TrainingDiverged(
                f"train.batch_size {batch} is larger than the whole training set of {len(labels)} images: no batch "
                "can be filled, whatever the clustering", f"lower train.batch_size to at most {len(labels)}")
        if clustered < batch:
            raise TrainingDiverged(
                f"epoch {epoch}: clustering left {clustered} clustered images of {len(labels)} "
                f"(eps {quality.get('eps')}), fewer than one batch of {batch} (train.batch_size)",
                f"lower train.batch_size to at most {clustered}; or, when far fewer images are clustered than "
                f"expected (features collapsed or eps too small), check the warm-up encoder, raise {key}.eps "
                f"(fixed rule) or {key}.rho (rho rule), or lower {key}.min_samples")
        if len(np.unique(labels[labels >= 0])) < 2 and not (labels < 0).any():
            raise TrainingDiverged(f"epoch {epoch}: every image fell into one cluster; no negatives exist",
                                   f"lower {key}.eps or {key}.rho (the features may have collapsed)")
        return dist.broadcast_array(labels, self.info), quality  # one decision for all ranks

    def batches(self, trainer: Trainer, epoch: int) -> list[list[int]]:
        batches = epoch_batches(np.flatnonzero(self.labels.labels >= 0), self.cfg.batch_size, self.seed, epoch)
        return cap_batches(batches, self.cfg.iters_per_epoch, "train.iters_per_epoch", "clustered images")

    def loader(self, trainer: Trainer, batches: list[list[int]], epoch: int):
        return batch_loader(self.dataset, batches, self.seed + epoch, self.num_workers,
                            pin_memory=self.info.device.type == "cuda")

    def run_step(self, trainer: Trainer, batch: dict) -> dict[str, float]:
        where = f"{self.name} epoch {trainer.epoch} iteration {trainer.iteration}"
        if not self.method.uses_generator:
            x = self.amp.input(batch["image"])
            idx = torch.from_numpy(batch["index"].numpy()).to(self.info.device)
            dist.sync_buffers([self.nets.id_encoder], self.info)
            return contrastive_iteration(self.nets.id_encoder, self.opts.id, self.amp, self.memory, self.method, x,
                                         idx, self.cfg, where, self.info)
        x, rows, m0, mt = view_inputs(self.store, batch, self.cfg.angles, self.cfg.batch_size, self.amp, self.info)
        idx = torch.from_numpy(rows).to(self.info.device)
        dist.sync_buffers([self.nets.id_encoder], self.info)  # as DDP would before a forward
        return joint_iteration(self.nets, self.opts, self.amp, self.memory, self.method,
                               JointBatch(x, m0, mt, idx, self.label_t[idx]), self.cfg, self.weights, where,
                               self.info)

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        return self.labels.record()

    def finish(self, trainer: Trainer, selection: Selection) -> dict[str, Any]:
        return write_selected_encoder(trainer, selection, self.nets.id_encoder, self.name, seed=self.seed,
                                      batch_size=self.cfg.batch_size, model_dir=self.model_dir,
                                      results_dir=self.results_dir)

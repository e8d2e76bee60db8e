"""The source pre-training step on the shared engine: PK batches of true identities, BN-neck losses
(BoT): batch-hard triplet on the pooled feature before the BN-neck, label-smoothed cross-entropy on a
bias-free classifier after it. Only the encoder is written out; the classifier is the source's own."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from genreid.config.sections.source import SourceConfig
from genreid.engine import dist
from genreid.engine.batches import batch_loader
from genreid.engine.context import StepEnv
from genreid.engine.guards import assert_finite, host_values
from genreid.engine.outputs import write_selected_encoder
from genreid.engine.selection import Selection
from genreid.engine.setup import TrainingRun
from genreid.engine.trainer import Trainer, TrainStep
from genreid.models.id_encoder import IdEncoder
from genreid.source.losses import batch_hard_triplet, label_smoothed_ce
from genreid.utils.seeding import seed_global_rngs, stream_seed
from genreid.warmup.batches import augment_batch, pk_batches

DIVERGED_FIX = "lower source.lr (the loss became NaN/inf), then rerun"


class SourceNet(nn.Module):
    """Encoder + classifier as one module (one DDP wrapper): returns the pre-BN feature and the logits."""

    def __init__(self, encoder: IdEncoder, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.embedding_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)  # BoT's classifier initialisation

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.encoder
        g = e.fc(e.pool(e.feature_map(x)).flatten(1))
        return g, self.classifier(e.bn_neck(g))


def source_losses(g: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, cfg: SourceConfig,
                  ) -> dict[str, torch.Tensor]:
    """The two BoT terms and their sum (``triplet_weight`` scales the triplet)."""
    ce = label_smoothed_ce(logits, targets, cfg.label_smoothing)
    tri = batch_hard_triplet(g, targets, cfg.margin)
    return {"ce": ce, "triplet": tri, "total": ce + cfg.triplet_weight * tri}


class SourceStep(TrainStep):
    name = "source"

    def __init__(self, cfg: SourceConfig, env: StepEnv, net: SourceNet, dataset: Any, pids: np.ndarray,
                 camids: np.ndarray):
        self.cfg, self.env, self.seed, self.info, self.amp = cfg, env, env.seed, env.info, env.amp
        self.net, self.model = net, dist.wrap(net, env.info)
        self.dataset, self.pids, self.camids = dataset, pids, camids
        self.optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    @classmethod
    def from_config(cls, cfg: SourceConfig, run: TrainingRun, net: SourceNet) -> SourceStep:
        """The step on ``run``'s labelled training split."""
        df = run.train_df
        return cls(cfg, run.env, net, run.train_set, pids=df["pid"].to_numpy(dtype=np.int64),
                   camids=df["camid"].to_numpy(dtype=np.int64))

    def state(self) -> dict[str, Any]:
        return {"net": self.net, "optimizer": self.optimizer, "scaler": self.amp}

    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return {"encoder": self.optimizer}

    def buffered_modules(self) -> list[nn.Module]:
        return [self.net]

    def begin_epoch(self, trainer: Trainer, epoch: int, fresh: bool) -> None:
        if fresh:  # augmentation draws come from the global RNG: seeded per epoch (a resumed epoch repeats)
            seed_global_rngs(stream_seed(self.seed, self.name, epoch, "draws", self.info.rank))
        self.model.train()

    def batches(self, trainer: Trainer, epoch: int) -> list[list[int]]:
        return pk_batches(self.pids, self.camids, self.cfg.batch_size, self.cfg.num_instances,
                          stream_seed(self.seed, self.name, epoch, "batches"), self.cfg.iters_per_epoch, "pk_cameras")

    def loader(self, trainer: Trainer, batches: list[list[int]], epoch: int):
        return batch_loader(self.dataset, batches, stream_seed(self.seed, self.name, epoch, "loader"),
                            self.env.num_workers, pin_memory=self.info.device.type == "cuda")

    def run_step(self, trainer: Trainer, batch: dict) -> dict[str, float]:
        targets = torch.from_numpy(self.pids[batch["index"].numpy()]).to(self.info.device)
        images = augment_batch(batch["image"]) if self.cfg.augment else batch["image"]
        with self.amp.autocast():
            g, logits = self.model(self.amp.input(images))
        parts = source_losses(g.float(), logits.float(), targets, self.cfg)
        assert_finite({"loss": parts["total"]}, f"source epoch {trainer.epoch} iteration {trainer.iteration}",
                      DIVERGED_FIX, self.info)
        self.optimizer.zero_grad(set_to_none=True)
        self.amp.backward(parts["total"])
        self.amp.step(self.optimizer)
        self.amp.update()
        return host_values(parts)  # one host read of the loss parts

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        return {"lr": self.optimizer.param_groups[0]["lr"]}

    def finish(self, trainer: Trainer, selection: Selection) -> dict[str, Any]:
        return write_selected_encoder(trainer, selection, self.net.encoder, self.env, method="supervised_source",
                                      batch_size=self.cfg.batch_size,
                                      extra={"num_source_ids": int(self.net.classifier.out_features)})

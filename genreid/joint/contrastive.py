"""Stage 3's shared memory/clustering step, and the contrastive-only iteration of the arms without a
generator.

Per epoch: pseudo-labels from the instance memory (the method's clustering; outliers leave the loader
but stay in memory as negatives) and the method's epoch state (:meth:`ContrastiveMethod.prepare`),
then one pass over a seeded shuffle of the clustered images. Each iteration takes E_id's SGD step on
the view-invariant memory loss (docs/method.md#one-training-iteration) with the positive view the
method supplies (:meth:`ContrastiveMethod.positive_view`; none = the loss's original-view term only),
then moves the memory slots of the batch towards the original-view features.

A method is a subclass registered with :func:`genreid.registry.register_method`: an arm that only
changes the positive view overrides :meth:`positive_view`; the generative methods (GCL, GCL+)
subclass :class:`genreid.joint.generative.GenerativeMethod`, which replaces the iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genreid.cluster.pseudo_labels import ClusterSettings, cluster_features
from genreid.config.sections.cluster import ClusterConfig
from genreid.config.sections.gan import TrainConfig
from genreid.engine import dist
from genreid.engine.amp import AmpContext
from genreid.engine.batches import batch_loader, cap_batches, epoch_batches
from genreid.engine.context import StepEnv
from genreid.engine.evaluate import extract_all
from genreid.engine.guards import assert_finite, host_values
from genreid.engine.hooks import Validation
from genreid.engine.outputs import write_selected_encoder
from genreid.engine.selection import Selection
from genreid.engine.setup import TrainingRun
from genreid.engine.trainer import Trainer, TrainStep
from genreid.errors import TrainingDiverged
from genreid.gan.nets import GanNets
from genreid.joint.iteration import DIVERGED_FIX, EncoderNets, Optimisers
from genreid.losses.view_invariant import ViewInvariantSettings, view_invariant_loss
from genreid.memory.instance_memory import InstanceMemory
from genreid.memory.labels import EpochLabels
from genreid.meshes.store import RenderStore
from genreid.utils.seeding import seed_global_rngs, stream_seed


@dataclass
class StepInputs:
    """What a stage-3 step trains on and where it writes; everything but the networks, optimisers,
    images, device and seed has a default so that a profiler or a test builds one in a line."""

    nets: GanNets | EncoderNets
    opts: Optimisers
    dataset: Any  # the training images (only its length matters for the memory)
    info: dist.DistInfo
    amp: AmpContext
    seed: int
    store: RenderStore | None = None  # the mesh renders (generative methods only)
    camids: np.ndarray | None = None
    true_ids: np.ndarray | None = None  # for the pseudo-label quality log only
    validation: Validation | None = None
    model_dir: Path = Path("models")
    results_dir: Path = Path("results")
    num_workers: int = 0
    true_views_dir: Path | None = None  # SynthReID's true novel views (data/true_views/<ds>; oracle_views reads them)

    @property
    def env(self) -> StepEnv:
        """The run facts the engine's shared writers read."""
        return StepEnv(info=self.info, amp=self.amp, seed=self.seed, model_dir=Path(self.model_dir),
                       results_dir=Path(self.results_dir), num_workers=self.num_workers)


class ContrastiveMethod(TrainStep):
    """The memory, clustering, batches and outputs every stage-3 method shares; the contrastive-only
    iteration. ``name`` is set by the registration."""

    stage = "train"
    clustering_section = "gcl"  # the ``train`` section whose ``cluster`` labels this method's memory

    def __init__(self, cfg: TrainConfig, inputs: StepInputs):
        self.cfg, self.inputs = cfg, inputs
        self.seed, self.nets, self.opts = inputs.seed, inputs.nets, inputs.opts
        self.info, self.amp = inputs.info, inputs.amp
        self.memory = InstanceMemory(len(inputs.dataset), inputs.nets.id_encoder.embedding_dim).to(inputs.info.device)
        self.labels = EpochLabels()

    @classmethod
    def from_config(cls, cfg: TrainConfig, run: TrainingRun, nets: GanNets | EncoderNets, opts: Optimisers, *,
                    store: RenderStore | None = None, validation: Validation | None = None,
                    true_views_dir: str | Path | None = None) -> ContrastiveMethod:
        """The method on ``run``'s training split, with its networks, optimisers and (generative methods)
        the mesh renders; ``true_views_dir``: SynthReID's true novel views (oracle_views reads them)."""
        df, env = run.train_df, run.env
        return cls(cfg, StepInputs(nets=nets, opts=opts, dataset=run.train_set, info=env.info, amp=env.amp,
                                   seed=env.seed, store=store, camids=df["camid"].to_numpy(),
                                   true_ids=df["pid"].to_numpy(), validation=validation, model_dir=env.model_dir,
                                   results_dir=env.results_dir, num_workers=env.num_workers,
                                   true_views_dir=Path(true_views_dir) if true_views_dir else None))

    # -- the hooks a method overrides ------------------------------------------------------------

    @property
    def cluster(self) -> ClusterConfig:
        return getattr(self.cfg, self.clustering_section).cluster

    @property
    def loss_settings(self) -> ViewInvariantSettings:
        """The view-invariant loss's keys of ``train``."""
        c = self.cfg
        return ViewInvariantSettings(c.num_negatives, c.memory_temperature, c.term3_negatives,
                                     c.positive_includes_self)

    @property
    def cluster_key(self) -> str:
        """Where the clustering's keys live (for error messages)."""
        return f"train.{self.clustering_section}.cluster"

    def prepare(self) -> None:
        """Per-epoch state from the freshly labelled memory (not called when resuming mid-epoch)."""

    def positive_view(self, x: torch.Tensor) -> torch.Tensor | None:
        """The image batch whose E_id features take f_nv's place in the loss; None = no such view."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """The method's own state across an epoch (checkpointed as ``method``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # -- the shared step ------------------------------------------------------------------------------

    def networks(self) -> dict[str, nn.Module]:
        """The networks a checkpoint holds."""
        return {"id_encoder": self.nets.id_encoder}

    def state(self) -> dict[str, Any]:
        return {**self.networks(), **{f"opt_{k}": v for k, v in self.optimisers().items()},
                "scaler": self.amp, "memory": self.memory, "labels": self.labels, "method": self}

    def optimisers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opts.named()

    def buffered_modules(self) -> list[torch.nn.Module]:
        return [self.nets.id_encoder]

    def before_train(self, trainer: Trainer) -> None:
        """Memory from E_id's features (authors' code) and the starting point's validation mAP."""
        if self.cfg.memory_init == "encoder":
            feats = extract_all(self.nets.id_encoder, self.inputs.dataset, self.info, self.cfg.extract_batch_size,
                                self.inputs.num_workers, "of the starting encoder", DIVERGED_FIX)
            self.memory.initialise(feats.features.to(self.info.device))
        if self.inputs.validation is not None:
            start = self.inputs.validation.run(trainer, "of the starting encoder")
            trainer.history.append({"epoch": -1, "val_mAP": start["mAP"], "val_R1": start["R1"]})

    def begin_epoch(self, trainer: Trainer, epoch: int, fresh: bool) -> None:
        if fresh:
            seed_global_rngs(stream_seed(self.seed, self.stage, epoch, "draws"))
            self.labels.set(*self._pseudo_labels(epoch))
        self.memory.set_labels(torch.from_numpy(self.labels.labels))
        if fresh:
            self.prepare()
        self.label_t = torch.from_numpy(self.labels.labels).to(self.info.device)

    def _pseudo_labels(self, epoch: int) -> tuple[np.ndarray, dict[str, Any]]:
        c, key = self.cluster, self.cluster_key
        eps, rho = c.eps_and_rho()
        settings = ClusterSettings(eps=eps, rho=rho, min_samples=c.min_samples, k1=c.k1, k2=c.k2)
        labels, quality = cluster_features(self.memory.features.cpu(), settings, true_ids=self.inputs.true_ids,
                                           camids=self.inputs.camids if c.camera_norm else None)
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
        batches = epoch_batches(np.flatnonzero(self.labels.labels >= 0), self.cfg.batch_size,
                                stream_seed(self.seed, self.stage, epoch, "batches"))
        return cap_batches(batches, self.cfg.iters_per_epoch, "train.iters_per_epoch", "clustered images")

    def loader(self, trainer: Trainer, batches: list[list[int]], epoch: int):
        return batch_loader(self.inputs.dataset, batches, stream_seed(self.seed, self.stage, epoch, "loader"),
                            self.inputs.num_workers,
                            pin_memory=self.info.device.type == "cuda")

    def where(self, trainer: Trainer) -> str:
        return f"{self.name} epoch {trainer.epoch} iteration {trainer.iteration}"

    def run_step(self, trainer: Trainer, batch: dict) -> dict[str, float]:
        x = self.amp.input(batch["image"])
        idx = torch.from_numpy(batch["index"].numpy()).to(self.info.device)
        dist.sync_buffers([self.nets.id_encoder], self.info)  # as DDP would before a forward
        return self.iteration(x, idx, self.where(trainer))

    def iteration(self, x: torch.Tensor, idx: torch.Tensor, where: str) -> dict[str, float]:
        """The view-invariant loss with the method's positive view (or none), one E_id step, then the
        memory update; returns the loss parts (a non-finite one raises TrainingDiverged)."""
        cfg, amp, info, id_encoder, memory = self.cfg, self.amp, self.info, self.nets.id_encoder, self.memory
        positive = self.positive_view(x)
        with amp.autocast():
            f = id_encoder(x)[1]
            f_pos = None if positive is None else id_encoder(amp.input(positive))[1]
        self.opts.id.zero_grad(set_to_none=True)
        with amp.autocast():
            vi, parts = view_invariant_loss(f, f_pos, idx, memory, self.loss_settings)
            loss = cfg.vi_weight * vi
        parts = host_values({**parts, "vi": vi.detach(), "total": loss.detach()})
        assert_finite(parts, where, DIVERGED_FIX, info)
        amp.backward(loss)
        dist.average_gradients(id_encoder.parameters(), info)
        amp.step(self.opts.id)
        amp.update()
        memory.update(dist.all_gather_cat(idx, info), dist.all_gather_cat(f.detach().float(), info),
                      cfg.memory_momentum)
        return parts

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        return self.labels.record()

    def finish(self, trainer: Trainer, selection: Selection) -> dict[str, Any]:
        return write_selected_encoder(trainer, selection, self.nets.id_encoder, self.inputs.env, method=self.name,
                                      batch_size=self.cfg.batch_size)

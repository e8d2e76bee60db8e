"""oracle_views (not in the papers): GCL with a perfect generator. The positive view is SynthReID's true
render of the same person turned by the sampled angle (:mod:`genreid.synth.novel_views`, the
``true_views`` stage's training split) instead of G(s_t, a(x)); no generator, renders or G/D optimisers.
Everything else is GCL's: clustering (``train.gcl.cluster``), memory, the view-invariant loss on E_id,
batches, epochs, optimiser and model selection; the angle of each sample is drawn as GCL draws it
(uniform over ``train.angles``, torch's global RNG, one draw per global batch). It bounds what a perfect
generator can give; SynthReID only (a real dataset has no true views and the stage says so)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genreid.config.sections.gan import TrainConfig
from genreid.data.loader import IMAGENET_MEAN, IMAGENET_STD
from genreid.data.true_views import load_true_views
from genreid.engine import dist
from genreid.engine.trainer import Trainer
from genreid.errors import DataError
from genreid.gan.renders import draw_angles
from genreid.joint.contrastive import ContrastiveMethod, StepInputs
from genreid.registry import register_method


@register_method("oracle_views", label="oracle_views", order=25, needs_generator=False)
class OracleViews(ContrastiveMethod):
    """The contrastive-only step with the true view of each sample at its drawn angle as the positive view."""

    def __init__(self, cfg: TrainConfig, inputs: StepInputs):
        super().__init__(cfg, inputs)
        if inputs.true_views_dir is None:
            raise DataError("oracle_views needs SynthReID's true views of the training images, and none were given",
                            "run it through `dvc repro` (stages/train.py passes data/true_views/<ds>)")
        truth = load_true_views(inputs.true_views_dir, "train")
        names = [Path(p).name for p in inputs.dataset.paths]
        if [Path(p).name for p in truth.paths] != names:
            raise DataError(f"{inputs.true_views_dir}: the training true views are of other images than the "
                            "training manifest", "rerun `dvc repro true_views@<ds>`")
        missing = sorted(set(cfg.angles) - set(truth.angles))
        if missing:
            raise DataError(f"{inputs.true_views_dir} has no true views at angle(s) {missing} of train.angles",
                            "render them (mesh.angles) or remove them from train.angles")
        truth = truth.resized(inputs.dataset.height, inputs.dataset.width)
        self.bank = torch.from_numpy(truth.images)  # uint8 (N, A, H, W, 3) at the network size
        self.column = {int(a): j for j, a in enumerate(truth.angles)}
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.positive: torch.Tensor | None = None

    def run_step(self, trainer: Trainer, batch: dict) -> dict[str, float]:
        """Pick the batch's true views at angles drawn as GCL draws them, then the shared step."""
        rows = batch["index"].numpy()
        drawn = dist.shard_batch(draw_angles(self.cfg.batch_size, self.cfg.angles), self.info)
        views = self.bank[torch.from_numpy(rows), torch.as_tensor(np.array([self.column[a] for a in drawn]))]
        self.positive = (views.permute(0, 3, 1, 2).float().div(255.0) - self.mean) / self.std
        return super().run_step(trainer, batch)

    def positive_view(self, x: torch.Tensor) -> torch.Tensor | None:
        return self.positive.to(x.device)

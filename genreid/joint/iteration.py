"""What a stage-3 iteration works on: one batch, the networks (with or without a generator) and
their optimisers. The iterations themselves are the methods' (:mod:`genreid.joint.contrastive`,
:mod:`genreid.joint.generative`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genreid.config.sections.gan import TrainConfig
from genreid.gan.nets import GanNets

DIVERGED_FIX = "lower train.optim.lr_id or train.stage3_lr_g, then rerun to resume from the last checkpoint"


@dataclass
class JointBatch:
    """This rank's share of one batch: images, their 0-degree and novel-view renders, rows, labels."""

    x: torch.Tensor
    m0: torch.Tensor
    mt: torch.Tensor
    idx: torch.Tensor
    labels: torch.Tensor


@dataclass
class EncoderNets:
    """The networks of a method without a generator: E_id alone."""

    id_encoder: nn.Module


@dataclass
class Optimisers:
    g: torch.optim.Optimizer | None  # None for methods without a generator
    d: torch.optim.Optimizer | None
    id: torch.optim.Optimizer

    def named(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers that exist, by schedule / checkpoint name."""
        return {k: v for k, v in (("g", self.g), ("d", self.d), ("id", self.id)) if v is not None}


def build_optimisers(nets: GanNets | EncoderNets, cfg: TrainConfig) -> Optimisers:
    """Stage 3's optimisers: E_id SGD (nesterov) at ``optim.lr_id``; with a generator also Adam for
    E_str+G and for D at ``stage3_lr_g``."""
    o = cfg.optim
    id_opt = torch.optim.SGD(nets.id_encoder.parameters(), lr=o.lr_id, momentum=o.momentum, nesterov=True,
                             weight_decay=o.weight_decay)
    if not isinstance(nets, GanNets):
        return Optimisers(g=None, d=None, id=id_opt)
    return Optimisers(
        g=torch.optim.Adam(nets.generator_parameters(), lr=cfg.stage3_lr_g, betas=(o.beta1, o.beta2),
                           weight_decay=o.weight_decay),
        d=torch.optim.Adam(nets.discriminator.parameters(), lr=cfg.stage3_lr_g, betas=(o.beta1, o.beta2),
                           weight_decay=o.weight_decay),
        id=id_opt)

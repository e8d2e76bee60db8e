"""The stage-3 methods as objects chosen once (docs/method.md): what each adds to the shared
joint iteration, which clustering it uses and what state it keeps across an epoch.

- :class:`GCL`: the view-invariant memory loss only; pseudo-labels with ``train.gcl.cluster``.
- :class:`GCLPlus`: identity mixing (D-Mixup / Mixup / F-Mixup / none) and prototype losses on top;
  prototypes are the memory's cluster means, fixed for the epoch; ``train.gcl_plus.cluster``.
- :class:`ControlAug` / :class:`ControlNone` (control arms, not in the papers): the same stage-3
  memory training without a generator, to ask whether generated views beat traditional augmentation
  (control_aug: the positive view is an augmented copy of the image, ``train.control_aug``) or more
  training alone (control_none: no positive view, term 3 of the loss only). Both cluster with GCL's
  ``train.gcl.cluster`` so that the only difference from GCL is the positive view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from genreid.config.sections.cluster import ClusterConfig
from genreid.config.sections.gan import METHODS, TrainConfig
from genreid.engine import dist
from genreid.errors import ConfigError
from genreid.gan.nets import GanNets, Views
from genreid.joint.augment import augmented_view
from genreid.joint.mixing import draw_mix, mix, soft_targets
from genreid.losses.prototype import cluster_prototypes, prototype_loss
from genreid.memory.instance_memory import InstanceMemory


@dataclass
class MixedView:
    """GCL+'s mixed identity view of one batch (empty for methods without one)."""

    f_mix: torch.Tensor | None = None
    target: torch.Tensor | None = None
    fakes: list[torch.Tensor] = field(default_factory=list)  # extra generated sets D and G's adversarial term see


class JointMethod:
    """GCL's behaviour; subclasses override what they add."""

    name = "gcl"
    uses_generator = True  # False: no generator, renders or G/D optimisers; contrastive_iteration runs

    def __init__(self, cluster: ClusterConfig):
        self.cluster = cluster

    @property
    def cluster_key(self) -> str:
        """Where the clustering's keys live (for error messages)."""
        return f"train.{self.name}.cluster"

    def begin_epoch(self, memory: InstanceMemory) -> None:
        """Per-epoch state from the freshly labelled memory (not called when resuming mid-epoch)."""

    def mixed_view(self, nets: GanNets, views: Views, x: torch.Tensor, labels: torch.Tensor) -> MixedView:
        return MixedView()

    def extra_loss(self, views: Views, labels: torch.Tensor, mixed: MixedView
                   ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        return None, {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class GCL(JointMethod):
    name = "gcl"


class GCLPlus(JointMethod):
    name = "gcl_plus"

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg.gcl_plus.cluster)
        self.cfg = cfg.gcl_plus
        self.prototypes: torch.Tensor | None = None

    def begin_epoch(self, memory: InstanceMemory) -> None:
        self.prototypes = cluster_prototypes(memory.features, memory.labels)

    def mixed_view(self, nets: GanNets, views: Views, x: torch.Tensor, labels: torch.Tensor) -> MixedView:
        kind = self.cfg.mixup
        if kind == "none":
            return MixedView()
        draw = draw_mix(x.shape[0], self.cfg.beta_alpha)
        out = MixedView(target=soft_targets(labels, draw, self.prototypes.shape[0]))
        if kind == "d_mixup":
            x_mix = nets.decoder(views.s0, mix(views.a, draw))
            out.f_mix = nets.id_encoder(x_mix)[1]
            if self.cfg.mix_adv:
                out.fakes.append(x_mix)
        elif kind == "mixup":
            out.f_mix = nets.id_encoder(mix(x, draw))[1]
        else:  # f_mixup
            out.f_mix = mix(views.f, draw)
        return out

    def extra_loss(self, views: Views, labels: torch.Tensor, mixed: MixedView
                   ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        if self.cfg.id_w <= 0:
            return None, {}
        proto, parts = prototype_loss(views.f, labels, self.prototypes, self.cfg.proto_temperature,
                                      self.cfg.proto_normalise, mixed.f_mix, mixed.target)
        return self.cfg.id_w * proto, {**parts, "proto": proto.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"prototypes": self.prototypes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prototypes = state["prototypes"]


class ControlNone(JointMethod):
    """Stage-3 memory training with no extra view: only the loss's original-view term remains."""

    name = "control_none"
    uses_generator = False

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg.gcl.cluster)  # GCL's clustering: the arms differ from GCL only in the view

    @property
    def cluster_key(self) -> str:
        return "train.gcl.cluster"

    def positive_input(self, x: torch.Tensor, info: dist.DistInfo) -> torch.Tensor | None:
        """The image batch whose E_id features take f_nv's place in the loss; None = no such view."""
        return None


class ControlAug(ControlNone):
    """GCL with the positive view from traditional augmentation of the same image instead of G(s_t, a)."""

    name = "control_aug"

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.aug = cfg.control_aug

    def positive_input(self, x: torch.Tensor, info: dist.DistInfo) -> torch.Tensor | None:
        return augmented_view(x, self.aug, info)


def build_method(name: str, cfg: TrainConfig) -> JointMethod:
    """The method object for ``--method`` (one of ``METHODS``)."""
    if name == "gcl":
        return GCL(cfg.gcl.cluster)
    if name == "gcl_plus":
        return GCLPlus(cfg)
    if name == "control_aug":
        return ControlAug(cfg)
    if name == "control_none":
        return ControlNone(cfg)
    raise ConfigError(f"--method {name!r} is not a stage-3 method",
                      f"use one of {', '.join(METHODS)} (the baseline is the warm-up encoder, stage 1)")

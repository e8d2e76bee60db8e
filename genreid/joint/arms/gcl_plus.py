"""GCL+ (TPAMI 2023): identity mixing (D-Mixup / Mixup / F-Mixup / none) and prototype losses on top
of GCL; prototypes are the memory's cluster means, fixed for the epoch; ``train.gcl_plus.cluster``
(a fixed eps) labels the memory."""

from __future__ import annotations

from typing import Any

import torch

from genreid.config.sections.gan import TrainConfig
from genreid.gan.nets import Views
from genreid.joint.contrastive import StepInputs
from genreid.joint.generative import GenerativeMethod, MixedView
from genreid.joint.mixing import draw_mix, mix, soft_targets
from genreid.losses.prototype import cluster_prototypes, prototype_loss
from genreid.registry import register_method


@register_method("gcl_plus", label="GCL+", order=40, needs_generator=True, config_key="gcl_plus")
class GCLPlus(GenerativeMethod):
    clustering_section = "gcl_plus"

    def __init__(self, cfg: TrainConfig, inputs: StepInputs):
        super().__init__(cfg, inputs)
        self.plus = cfg.gcl_plus
        self.prototypes: torch.Tensor | None = None

    def prepare(self) -> None:
        self.prototypes = cluster_prototypes(self.memory.features, self.memory.labels)

    def mixed_view(self, views: Views, x: torch.Tensor, labels: torch.Tensor) -> MixedView:
        kind = self.plus.mixup
        if kind == "none":
            return MixedView()
        draw = draw_mix(x.shape[0], self.plus.beta_alpha)
        out = MixedView(target=soft_targets(labels, draw, self.prototypes.shape[0]))
        if kind == "d_mixup":
            x_mix = self.nets.decoder(views.s0, mix(views.a_gen, draw))
            out.f_mix = self.nets.id_encoder(x_mix)[1]
            if self.plus.mix_adv:
                out.fakes.append(x_mix)
        elif kind == "mixup":
            out.f_mix = self.nets.id_encoder(mix(x, draw))[1]
        else:  # f_mixup
            out.f_mix = mix(views.f, draw)
        return out

    def extra_loss(self, views: Views, labels: torch.Tensor, mixed: MixedView
                   ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        if self.plus.id_w <= 0:
            return None, {}
        proto, parts = prototype_loss(views.f, labels, self.prototypes, self.plus.proto_temperature,
                                      self.plus.proto_normalise, mixed.f_mix, mixed.target)
        return self.plus.id_w * proto, {**parts, "proto": proto.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"prototypes": self.prototypes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prototypes = state["prototypes"]

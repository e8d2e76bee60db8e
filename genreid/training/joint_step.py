"""One stage-3 iteration: GAN forward, D step, then one backward that moves E_str+G and E_id.

GCL: reconstruction + adversarial + view-invariant memory loss (METHOD.md section 3).
GCL+ adds identity mixing and prototype losses (section 4):
- ``d_mixup``: a_mix = mix(a); x_mix = G(s0, a_mix); f_mix = E_id(x_mix); x_mix also meets D;
- ``mixup``:   x_mix = mix(x) in pixel space; f_mix = E_id(x_mix);
- ``f_mixup``: f_mix = mix(f) in feature space;
- ``none``:    no mixed view, prototype loss on the original views only.
After the step the memory slots of the batch move towards the original-view features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genreid.losses.prototype import prototype_loss
from genreid.losses.view_invariant import view_invariant_loss
from genreid.memory.instance_memory import InstanceMemory
from genreid.training.ddp import DistInfo, all_gather_cat
from genreid.training.gan_batch import AmpContext, GanNets, discriminator_step, fake_sets, forward_views, generator_loss
from genreid.training.gan_dist import assert_finite_everywhere, average_gradients
from genreid.training.mixup import draw_mix, mix, soft_targets


@dataclass(frozen=True)
class JointLossSettings:
    method: str  # "gcl" | "gcl_plus"
    weights: dict[str, float]
    vi_weight: float = 1.0
    memory_temperature: float = 0.04
    memory_momentum: float = 0.2
    num_negatives: int = 8192
    term3_negatives: str = "f"
    positive_includes_self: bool = False
    mixup: str = "d_mixup"
    beta_alpha: float = 0.6
    mix_adv: bool = True
    id_w: float = 1.0
    proto_temperature: float = 0.05
    proto_normalise: bool = True


@dataclass
class Optimisers:
    g: torch.optim.Optimizer
    d: torch.optim.Optimizer
    id: torch.optim.Optimizer

    def state_dict(self) -> dict:
        return {"g": self.g.state_dict(), "d": self.d.state_dict(), "id": self.id.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        self.id.load_state_dict(state["id"])


def joint_iteration(nets: GanNets, opts: Optimisers, amp: AmpContext, memory: InstanceMemory,
                    prototypes: torch.Tensor | None, x: torch.Tensor, m0: torch.Tensor, mt: torch.Tensor,
                    idx: torch.Tensor, labels: torch.Tensor, s: JointLossSettings, where: str,
                    info: DistInfo = DistInfo()) -> dict[str, float]:
    """Run one iteration in place; returns the loss parts (a non-finite one raises TrainingDiverged).

    Under ``torchrun`` each rank passes its share of the batch; gradients are averaged and the
    memory receives every rank's features.
    """
    with amp.autocast():
        views = forward_views(nets, x, m0, mt)
        extra_fakes: list[torch.Tensor] = []
        f_mix = target = None
        if s.method == "gcl_plus" and s.mixup != "none":
            draw = draw_mix(x.shape[0], s.beta_alpha)
            if s.mixup == "d_mixup":
                x_mix = nets.decoder(views.s0, mix(views.a, draw))
                f_mix = nets.id_encoder(x_mix)[1]
                if s.mix_adv:
                    extra_fakes.append(x_mix)
            elif s.mixup == "mixup":
                f_mix = nets.id_encoder(mix(x, draw))[1]
            elif s.mixup == "f_mixup":
                f_mix = mix(views.f, draw)
            else:
                raise ValueError(f"unknown mixup {s.mixup!r}")
            target = soft_targets(labels, draw, prototypes.shape[0])
    fakes = fake_sets(views, extra_fakes)
    parts = discriminator_step(nets, opts.d, fakes, x, s.weights, amp, info)
    opts.g.zero_grad(set_to_none=True)
    opts.id.zero_grad(set_to_none=True)
    with amp.autocast():
        loss, g_parts = generator_loss(nets, views, x, s.weights, fakes)
        vi, vi_parts = view_invariant_loss(views.f, views.f_nv, idx, memory, s.num_negatives, s.memory_temperature,
                                           s.term3_negatives, s.positive_includes_self)
        loss = loss + s.vi_weight * vi
        parts.update(**g_parts, **vi_parts, vi=float(vi.detach()))
        if s.method == "gcl_plus" and s.id_w > 0:
            proto, p_parts = prototype_loss(views.f, labels, prototypes, s.proto_temperature, s.proto_normalise,
                                            f_mix, target)
            loss = loss + s.id_w * proto
            parts.update(**p_parts, proto=float(proto.detach()))
    parts["total"] = float(loss.detach())
    assert_finite_everywhere(parts, where, info)
    amp.backward(loss)
    average_gradients(nets.generator_parameters(), info)
    average_gradients(nets.id_encoder.parameters(), info)
    amp.step(opts.g)
    amp.step(opts.id)
    amp.update()
    memory.update(all_gather_cat(idx, info), all_gather_cat(views.f.detach().float(), info), s.memory_momentum)
    return parts

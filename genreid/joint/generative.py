"""The generative joint step of GCL and GCL+ (docs/method.md#one-training-iteration): GAN forward
(+ the method's mixed view), D step, then one backward that moves E_str+G (Adam) and E_id (SGD);
afterwards the memory slots of the batch move towards the original-view features. With
``train.detach_appearance_for_generator`` the generator's losses move G as always but never E_id, which
then learns from its contrastive losses alone (an ablation: are the views weak, or do the GAN's gradients
hurt E_id?).

A generative method overrides :meth:`GenerativeMethod.mixed_view` and :meth:`GenerativeMethod.extra_loss`
(GCL+'s identity mixing and prototype losses, docs/method.md#gcl-additions); GCL overrides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from genreid.config.sections.gan import TrainConfig
from genreid.engine import dist
from genreid.engine.guards import assert_finite, host_values
from genreid.engine.trainer import Trainer
from genreid.gan.nets import GanNets, Views, discriminator_step, fake_sets, forward_views, generator_loss
from genreid.gan.renders import view_inputs
from genreid.joint.contrastive import ContrastiveMethod, StepInputs
from genreid.joint.iteration import DIVERGED_FIX, JointBatch
from genreid.losses.view_invariant import view_invariant_loss


@dataclass
class MixedView:
    """GCL+'s mixed identity view of one batch (empty for methods without one)."""

    f_mix: torch.Tensor | None = None
    target: torch.Tensor | None = None
    fakes: list[torch.Tensor] = field(default_factory=list)  # extra generated sets D and G's adversarial term see


class GenerativeMethod(ContrastiveMethod):
    """A stage-3 method that trains E_id jointly with the pre-trained generator on the mesh renders."""

    nets: GanNets

    def __init__(self, cfg: TrainConfig, inputs: StepInputs):
        super().__init__(cfg, inputs)
        self.weights = cfg.weights.model_dump()

    # -- the hooks a generative method overrides -----------------------------------------------------

    def mixed_view(self, views: Views, x: torch.Tensor, labels: torch.Tensor) -> MixedView:
        return MixedView()

    def extra_loss(self, views: Views, labels: torch.Tensor, mixed: MixedView
                   ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        return None, {}

    # -- the joint step ---------------------------------------------------------------------------------

    def networks(self) -> dict[str, nn.Module]:
        n = self.nets
        return {"id_encoder": n.id_encoder, "str_encoder": n.str_encoder, "decoder": n.decoder,
                "discriminator": n.discriminator}

    def run_step(self, trainer: Trainer, batch: dict) -> dict[str, float]:
        x, rows, m0, mt = view_inputs(self.inputs.store, batch, self.cfg.angles, self.cfg.batch_size, self.amp,
                                      self.info)
        idx = torch.from_numpy(rows).to(self.info.device)
        dist.sync_buffers([self.nets.id_encoder], self.info)  # as DDP would before a forward
        return self.joint_iteration(JointBatch(x, m0, mt, idx, self.label_t[idx]), self.where(trainer))

    def joint_iteration(self, batch: JointBatch, where: str) -> dict[str, float]:
        """Run one iteration in place; returns the loss parts (a non-finite one raises TrainingDiverged)."""
        nets, opts, amp, memory, cfg, weights, info = (self.nets, self.opts, self.amp, self.memory, self.cfg,
                                                       self.weights, self.info)
        with amp.autocast():
            views = forward_views(nets, batch.x, batch.m0, batch.mt, cfg.detach_appearance_for_generator)
            mixed = self.mixed_view(views, batch.x, batch.labels)
        fakes = fake_sets(views, mixed.fakes)
        parts: dict[str, Any] = discriminator_step(nets, opts.d, fakes, batch.x, weights, amp, info)
        opts.g.zero_grad(set_to_none=True)
        opts.id.zero_grad(set_to_none=True)
        with amp.autocast():
            loss, g_parts = generator_loss(nets, views, batch.x, weights, fakes)
            vi, vi_parts = view_invariant_loss(views.f, views.f_nv, batch.idx, memory, self.loss_settings)
            loss = loss + cfg.vi_weight * vi
            parts.update(**g_parts, **vi_parts, vi=vi.detach())
            extra, extra_parts = self.extra_loss(views, batch.labels, mixed)
            if extra is not None:
                loss = loss + extra
                parts.update(extra_parts)
        parts["total"] = loss.detach()
        parts = host_values(parts)  # the step's one host read of the loss parts
        assert_finite(parts, where, DIVERGED_FIX, info)
        amp.backward(loss)
        dist.average_gradients(nets.generator_parameters(), info)
        dist.average_gradients(nets.id_encoder.parameters(), info)
        amp.step(opts.g)
        amp.step(opts.id)
        amp.update()
        memory.update(dist.all_gather_cat(batch.idx, info), dist.all_gather_cat(views.f.detach().float(), info),
                      cfg.memory_momentum)
        return parts

"""One stage-3 iteration: GAN forward (+ the method's mixed view), D step, then one backward that
moves E_str+G (Adam) and E_id (SGD); afterwards the memory slots of the batch move towards the
original-view features (docs/method.md#one-training-iteration and docs/method.md#gcl-additions).
Methods without a generator (the control arms) run :func:`contrastive_iteration` instead: E_id's
SGD step on the same memory loss, nothing else."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genreid.config.sections.gan import TrainConfig
from genreid.engine import dist
from genreid.engine.amp import AmpContext
from genreid.engine.guards import assert_finite, host_values
from genreid.gan.nets import GanNets, discriminator_step, fake_sets, forward_views, generator_loss
from genreid.joint.methods import ControlNone, JointMethod
from genreid.losses.view_invariant import view_invariant_loss
from genreid.memory.instance_memory import InstanceMemory

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


def joint_iteration(nets: GanNets, opts: Optimisers, amp: AmpContext, memory: InstanceMemory, method: JointMethod,
                    batch: JointBatch, cfg: TrainConfig, weights: dict[str, float], where: str,
                    info: dist.DistInfo = dist.DistInfo()) -> dict[str, float]:
    """Run one iteration in place; returns the loss parts (a non-finite one raises TrainingDiverged)."""
    with amp.autocast():
        views = forward_views(nets, batch.x, batch.m0, batch.mt)
        mixed = method.mixed_view(nets, views, batch.x, batch.labels)
    fakes = fake_sets(views, mixed.fakes)
    parts = discriminator_step(nets, opts.d, fakes, batch.x, weights, amp, info)
    opts.g.zero_grad(set_to_none=True)
    opts.id.zero_grad(set_to_none=True)
    with amp.autocast():
        loss, g_parts = generator_loss(nets, views, batch.x, weights, fakes)
        vi, vi_parts = view_invariant_loss(views.f, views.f_nv, batch.idx, memory, cfg.num_negatives,
                                           cfg.memory_temperature, cfg.term3_negatives, cfg.positive_includes_self)
        loss = loss + cfg.vi_weight * vi
        parts.update(**g_parts, **vi_parts, vi=vi.detach())
        extra, extra_parts = method.extra_loss(views, batch.labels, mixed)
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


def contrastive_iteration(id_encoder: nn.Module, opt_id: torch.optim.Optimizer, amp: AmpContext,
                          memory: InstanceMemory, method: ControlNone, x: torch.Tensor, idx: torch.Tensor,
                          cfg: TrainConfig, where: str, info: dist.DistInfo = dist.DistInfo()) -> dict[str, float]:
    """One control-arm iteration: the view-invariant loss with the method's positive view (or none),
    one E_id step, the same memory update as :func:`joint_iteration`."""
    positive = method.positive_input(x, info)
    with amp.autocast():
        f = id_encoder(x)[1]
        f_pos = None if positive is None else id_encoder(amp.input(positive))[1]
    opt_id.zero_grad(set_to_none=True)
    with amp.autocast():
        vi, parts = view_invariant_loss(f, f_pos, idx, memory, cfg.num_negatives, cfg.memory_temperature,
                                        cfg.term3_negatives, cfg.positive_includes_self)
        loss = cfg.vi_weight * vi
    parts = host_values({**parts, "vi": vi.detach(), "total": loss.detach()})
    assert_finite(parts, where, DIVERGED_FIX, info)
    amp.backward(loss)
    dist.average_gradients(id_encoder.parameters(), info)
    amp.step(opt_id)
    amp.update()
    memory.update(dist.all_gather_cat(idx, info), dist.all_gather_cat(f.detach().float(), info), cfg.memory_momentum)
    return parts

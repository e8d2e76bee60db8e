"""One stage-3 iteration: GAN forward (+ the method's mixed view), D step, then one backward that
moves E_str+G (Adam) and E_id (SGD); afterwards the memory slots of the batch move towards the
original-view features (METHOD.md sections 3-4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genreid.config.sections.gan import TrainConfig
from genreid.engine import dist
from genreid.engine.amp import AmpContext
from genreid.engine.guards import assert_finite
from genreid.gan.nets import GanNets, discriminator_step, fake_sets, forward_views, generator_loss
from genreid.joint.methods import JointMethod
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
class Optimisers:
    g: torch.optim.Optimizer
    d: torch.optim.Optimizer
    id: torch.optim.Optimizer


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
        parts.update(**g_parts, **vi_parts, vi=float(vi.detach()))
        extra, extra_parts = method.extra_loss(views, batch.labels, mixed)
        if extra is not None:
            loss = loss + extra
            parts.update(extra_parts)
    parts["total"] = float(loss.detach())
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

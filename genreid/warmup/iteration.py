"""One stage-1 optimiser step (Cluster-Contrast): forward, ``CE(f C^T / tau)``, backward, Adam, then the
cluster memory moves with the batch's features. ``warmup.micro_batch`` accumulates gradients over
slices of whole BN groups and gives the same update as one pass with less activation memory."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from genreid.engine import dist
from genreid.engine.amp import AmpContext
from genreid.engine.guards import assert_finite
from genreid.errors import ConfigError
from genreid.losses.cluster_contrast import cluster_contrast_loss
from genreid.memory.cluster_memory import ClusterMemory

DIVERGED_FIX = "lower warmup.lr (the loss or features became NaN/inf), then rerun"


def micro_batch_size(micro_batch: int, bn_group_size: int) -> int:
    """Images per forward/backward pass; 0 = the whole batch. With BN groups the micro-batch must hold
    whole groups, else BatchNorm would see other statistics than in one pass."""
    if micro_batch and bn_group_size <= 0:
        raise ConfigError(f"warmup.micro_batch {micro_batch} needs BatchNorm groups (warmup.bn_group_size > 0): "
                          "with whole-batch statistics a micro-batch would change them",
                          "set warmup.bn_group_size (e.g. 64) or warmup.micro_batch: 0")
    if micro_batch and micro_batch % bn_group_size:
        raise ConfigError(f"warmup.micro_batch {micro_batch} is not a multiple of warmup.bn_group_size "
                          f"{bn_group_size}", "choose a multiple of bn_group_size (or 0 for no micro-batching)")
    return micro_batch


def _bn_buffers(model: nn.Module) -> tuple[list[torch.Tensor], int]:
    """Every BatchNorm running buffer of ``model`` and its BN group size (0: whole batch)."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    group = min((getattr(m, "group_size", 0) for m in norms), default=0)
    return [b for m in norms for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None], group


class WarmupBatch(NamedTuple):
    """This rank's batch: images, their pseudo-labels (cluster ids) and the slice size gradients
    accumulate over (0: one pass)."""

    images: torch.Tensor
    targets: torch.Tensor
    micro_batch: int = 0


def warmup_iteration(model: nn.Module, optimizer: torch.optim.Optimizer, memory: ClusterMemory, amp: AmpContext,
                     batch: WarmupBatch, temperature: float, where: str,
                     info: dist.DistInfo = dist.DistInfo()) -> dict[str, float]:
    """One optimiser step on this rank's batch; ``batch.micro_batch`` > 0 accumulates gradients over slices.

    The slices give the same update as one pass: the loss is the batch mean (each slice's summed CE
    over the batch size), BN groups never straddle slices, every slice starts from the same BN
    running statistics and they end as the mean of the slices' (what one pass over all groups
    gives), and the memory moves once with the whole batch's features.
    """
    images, targets, micro_batch = batch
    b = images.shape[0]
    if not micro_batch or micro_batch >= b:
        with amp.autocast():
            _, f = model(amp.input(images))
        f = F.normalize(f.float(), dim=1)
        loss = cluster_contrast_loss(f, memory.features, targets, temperature)
        assert_finite({"loss": loss}, where, DIVERGED_FIX, info)
        optimizer.zero_grad(set_to_none=True)
        amp.backward(loss)
    else:
        optimizer.zero_grad(set_to_none=True)
        buffers, group = _bn_buffers(model)
        start = [t.clone() for t in buffers]
        ends: list[list[torch.Tensor]] = []
        feats, total = [], torch.zeros((), device=targets.device)
        slices = list(range(0, b, micro_batch))
        for n, i in enumerate(slices):
            for t, s0 in zip(buffers, start):
                t.copy_(s0)
            sync = n == len(slices) - 1 or not hasattr(model, "no_sync")
            with contextlib.nullcontext() if sync else model.no_sync():
                with amp.autocast():
                    _, f = model(amp.input(images[i:i + micro_batch]))
                f = F.normalize(f.float(), dim=1)
                part = cluster_contrast_loss(f, memory.features, targets[i:i + micro_batch], temperature)
                part = part * (f.shape[0] / b)
                amp.backward(part)
            ends.append([t.clone() for t in buffers])
            feats.append(f.detach())
            total = total + part.detach()
        with torch.no_grad():
            groups = [-(-min(micro_batch, b - i) // group) if group > 0 else 1 for i in slices]
            weights = [g / sum(groups) for g in groups]  # one pass: the mean over all BN groups
            for j, t in enumerate(buffers):
                if t.is_floating_point():
                    t.copy_(sum(w * e[j] for w, e in zip(weights, ends)))
                else:
                    t.copy_(ends[0][j])  # num_batches_tracked: one pass
        f, loss = torch.cat(feats), total
        assert_finite({"loss": loss}, where, DIVERGED_FIX, info)
    amp.step(optimizer)
    amp.update()
    memory.update(dist.all_gather_cat(f.detach(), info), dist.all_gather_cat(targets, info))
    return {"loss": float(loss.detach())}

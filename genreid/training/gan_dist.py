"""Multi-process support for the generator and joint trainers (``torchrun``, see ``ddp.py``).

The GAN iteration calls G and D several times before one backward and differentiates D twice
(R1), which DistributedDataParallel does not support; these trainers therefore average gradients
explicitly after each backward (mathematically DDP's all-reduce). Every rank holds the full
instance memory and applies the gathered updates of all ranks, so memories stay identical.
Each global batch is drawn identically on every rank and split ``batch[rank::world]``; random
draws made per global batch (angles) are sliced the same way, so stage 2 on N ranks computes what
one process computes on the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from genreid.errors import ConfigError
from genreid.training.checkpoint import assert_finite
from genreid.training.ddp import DistInfo, cleanup


def rank_share(batches: list[list[int]], info: DistInfo) -> list[list[int]]:
    """This rank's slice of every global batch."""
    if not info.enabled:
        return batches
    if batches and len(batches[0]) % info.world_size:
        raise ConfigError(f"batch size {len(batches[0])} is not divisible by the {info.world_size} processes",
                          "choose a batch_size that is a multiple of the number of processes")
    return [b[info.rank::info.world_size] for b in batches]


def rank_slice(values: Sequence, info: DistInfo) -> list:
    return list(values)[info.rank::info.world_size] if info.enabled else list(values)


def average_gradients(params: Iterable[nn.Parameter], info: DistInfo) -> None:
    """Mean of each parameter gradient over ranks (parameters without a gradient are skipped)."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_buffers(module: nn.Module, info: DistInfo) -> None:
    """Rank 0's buffers (BatchNorm running statistics) everywhere, as DDP does before a forward."""
    if info.enabled:
        for b in module.buffers():
            dist.broadcast(b.data, 0)


def broadcast_tensor(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.broadcast(t, 0)
    return t


def assert_finite_everywhere(parts: dict[str, float], where: str, info: DistInfo) -> None:
    """Raise on every rank together when any rank saw a non-finite loss (no rank left waiting)."""
    if info.enabled:
        bad = torch.tensor([0.0 if all(v == v and abs(v) != float("inf") for v in parts.values()) else 1.0],
                           device=info.device)
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if bad.item() and all(v == v and abs(v) != float("inf") for v in parts.values()):
            parts = {**parts, "loss on another rank": float("nan")}
    assert_finite(parts, where)


def release(info: DistInfo, owns_group: bool) -> None:
    """Destroy the process group only when this trainer created it."""
    if owns_group:
        cleanup(info)

"""Multi-process training through torch.distributed (``torchrun``), set up once by the engine.

Without ``WORLD_SIZE > 1`` in the environment every helper is a single-process pass-through, so
steps call them unconditionally. With it: NCCL on CUDA (one GPU per local rank), gloo on CPU.
Every global batch is drawn identically on every rank and each rank takes a contiguous slice
(:func:`shard_batch`; contiguous keeps the warm-up's PK groups whole). Gradients are averaged
over ranks; BatchNorm buffers are made identical (rank 0's) before every feature extraction,
clustering, validation and checkpoint (:func:`sync_buffers`).

The GAN stages call G and D several times before one backward and differentiate D twice (R1),
which DistributedDataParallel does not support; they average gradients explicitly after each
backward (:func:`average_gradients`, mathematically DDP's all-reduce). The warm-up uses DDP.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from genreid.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this process created the group (and destroys it at the end)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device | str, backend: str | None = None) -> DistInfo:
    """Join the process group torchrun describes (env RANK/WORLD_SIZE/LOCAL_RANK/MASTER_*), if any."""
    device = torch.device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=device)
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s)",
                              "start at most one process per GPU (torchrun --nproc_per_node)")
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend or ("nccl" if device.type == "cuda" else "gloo"))
    return DistInfo(rank, world, local, device, owns)


def release(info: DistInfo) -> None:
    """Destroy the process group when this process created it (a caller's group stays open)."""
    if info.enabled and info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo) -> nn.Module:
    """DistributedDataParallel when distributed, the model itself otherwise."""
    if not info.enabled:
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shard_batch(batch: Sequence[T], info: DistInfo) -> list[T]:
    """This rank's contiguous slice of one global batch (the whole batch without torchrun)."""
    if not info.enabled:
        return list(batch)
    if len(batch) % info.world_size:
        raise ConfigError(f"batch size {len(batch)} is not divisible by the {info.world_size} processes",
                          "choose a batch_size that is a multiple of the number of processes")
    per = len(batch) // info.world_size
    return list(batch[info.rank * per:(info.rank + 1) * per])


def all_gather_cat(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate equal-shaped tensors of every rank along dim 0, in rank order."""
    if not info.enabled:
        return x
    parts = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def shard_indices(n: int, info: DistInfo) -> np.ndarray:
    """This rank's indices of range(n) for sharded feature extraction (rank, rank + world, ...)."""
    return np.arange(info.rank, n, info.world_size)


def gather_sharded(x: torch.Tensor, n: int, info: DistInfo) -> torch.Tensor:
    """Reassemble per-rank results of :func:`shard_indices` into the full n rows, in dataset order."""
    if not info.enabled:
        return x
    per_rank = -(-n // info.world_size)
    padded = torch.zeros((per_rank, *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[:x.shape[0]] = x
    stacked = all_gather_cat(padded, info).view(info.world_size, per_rank, *x.shape[1:])
    out = torch.empty((n, *x.shape[1:]), dtype=x.dtype, device=x.device)
    for r in range(info.world_size):
        idx = torch.arange(r, n, info.world_size, device=x.device)
        out[idx] = stacked[r, :idx.numel()]
    return out


def broadcast_array(arr: np.ndarray, info: DistInfo, src: int = 0) -> np.ndarray:
    """Rank ``src``'s numpy array on every rank (same shape and dtype expected everywhere)."""
    if not info.enabled:
        return arr
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(info.device)
    dist.broadcast(t, src)
    return t.cpu().numpy()


def sync_buffers(modules: Iterable[nn.Module], info: DistInfo) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank."""
    if info.enabled:
        for module in modules:
            for b in unwrap(module).buffers():
                dist.broadcast(b.data, 0)


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


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())

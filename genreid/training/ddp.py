"""Optional multi-process training through torch.distributed (``torchrun``).

Without ``WORLD_SIZE > 1`` in the environment every helper is a single-process pass-through, so
trainers call them unconditionally. With it: NCCL on CUDA (one GPU per local rank), gloo on CPU.
Each rank trains on its own share of the batch and DDP averages the gradients; BatchNorm
statistics stay per rank, or per ``bn_group_size`` group inside a rank (ghost BN).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from genreid.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device, backend: str | None = None) -> DistInfo:
    """Join the process group torchrun describes (env RANK/WORLD_SIZE/LOCAL_RANK/MASTER_*), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=torch.device(device))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.device(device).type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s)",
                              "start at most one process per GPU (torchrun --nproc_per_node)")
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if torch.device(device).type == "cuda" else "gloo"))
    return DistInfo(rank, world, local, torch.device(device))


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


def all_gather_cat(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate equal-shaped tensors of every rank along dim 0, in rank order."""
    if not info.enabled:
        return x
    parts = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def shard(n: int, info: DistInfo) -> np.ndarray:
    """This rank's indices of range(n) (rank, rank + world, ...)."""
    return np.arange(info.rank, n, info.world_size)


def gather_sharded(x: torch.Tensor, n: int, info: DistInfo) -> torch.Tensor:
    """Reassemble per-rank results of :func:`shard` (rows in shard order) into the full n rows."""
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


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()

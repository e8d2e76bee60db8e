"""Warm-up under torch.distributed (gloo on CPU, 2 ranks, one spawn): sharded feature extraction
reassembles in dataset order, and two Cluster-Contrast steps on 2 x 4 images give the same
weights and cluster memory as one process on 8 images with BN groups of 4."""

from __future__ import annotations

import os
import socket

import numpy as np
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from genreid.memory.cluster_memory import ClusterMemory
from genreid.models.id_encoder import build_encoder
from genreid.models.layers import set_bn_group_size
from genreid.training import ddp
from genreid.training.gan_batch import AmpContext
from genreid.training.warmup import WarmupSettings, pseudo_labels, train_step


class _Images(Dataset):
    def __init__(self, n: int):
        g = torch.Generator().manual_seed(5)
        self.images = torch.randn(n, 3, 32, 16, generator=g)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "pid": i % 3, "camid": i % 2, "index": i}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup():
    torch.manual_seed(0)
    model = build_encoder("resnet18", "none", "gem", 8, 1, 4)
    memory = ClusterMemory(8, temperature=0.05, momentum=0.1)
    g = torch.Generator().manual_seed(1)
    memory.reset(torch.randn(12, 8, generator=g), torch.arange(12) % 3)
    images = torch.randn(8, 3, 32, 16, generator=g)
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
    return model, memory, images, targets


def _steps(model, memory, images, targets, info) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    amp = AmpContext(torch.device("cpu"))
    model.train()
    for _ in range(2):
        train_step(model, memory, opt, images, targets, info, amp)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = ddp.init_distributed(torch.device("cpu"))
    assert info.enabled and info.world_size == 2 and info.is_main == (rank == 0)
    model, memory, images, targets = _setup()
    settings = WarmupSettings(k1=4, k2=2, eps=0.6, min_samples=2, extract_batch_size=2)
    features, labels, _ = pseudo_labels(ddp.wrap(model, info), _Images(7), settings, info, None)
    share = slice(4 * rank, 4 * rank + 4)
    wrapped = ddp.wrap(set_bn_group_size(model, 0), info)
    _steps(wrapped, memory, images[share], targets[share], info)
    torch.save({"features": features, "labels": labels, "memory": memory.features,
                "params": {k: v.detach() for k, v in model.named_parameters()}}, f"{out}/rank{rank}.pt")
    ddp.cleanup(info)


def test_two_ranks_match_one_process_with_ghost_bn(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))

    single = ddp.DistInfo()
    model, memory, images, targets = _setup()
    settings = WarmupSettings(k1=4, k2=2, eps=0.6, min_samples=2, extract_batch_size=2)
    features, labels, _ = pseudo_labels(model, _Images(7), settings, single, None)
    for r in (r0, r1):  # sharded extraction, reassembled in dataset order, labels shared
        torch.testing.assert_close(r["features"], features)
        np.testing.assert_array_equal(r["labels"], labels)

    _steps(set_bn_group_size(model, 4), memory, images, targets, single)
    torch.testing.assert_close(r0["memory"], r1["memory"], rtol=0, atol=0)
    torch.testing.assert_close(r0["memory"], memory.features, rtol=1e-4, atol=1e-5)
    initial = dict(_setup()[0].named_parameters())
    moved = 0
    for name, p in model.named_parameters():
        assert torch.equal(r0["params"][name], r1["params"][name]), name
        step_single = p.detach() - initial[name].detach()
        step_ddp = r0["params"][name] - initial[name].detach()
        scale = float(step_single.abs().max())
        assert float((step_ddp - step_single).abs().max()) <= 1e-3 * scale + 1e-6, name
        moved += int(scale > 1e-4)
    assert moved > 20  # the steps changed the weights: the comparison is not vacuous

"""warmup.micro_batch: gradient accumulation over slices of whole BN groups gives the update of one
pass over the batch (gradients, loss, BN running statistics, cluster memory), within float tolerance."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from genreid.engine.amp import AmpContext
from genreid.errors import ConfigError
from genreid.memory.cluster_memory import ClusterMemory
from genreid.models.id_encoder import build_encoder
from genreid.models.layers import set_bn_group_size
from genreid.warmup.iteration import WarmupBatch, micro_batch_size, warmup_iteration


def _setup(group: int):
    torch.manual_seed(0)
    enc = set_bn_group_size(build_encoder("resnet18", "none", "gem", 32, 1, 4), group).train()
    memory = ClusterMemory(32, 0.1)
    memory.reset(F.normalize(torch.randn(60, 32), dim=1), torch.arange(60) % 6)
    return enc, memory


@pytest.mark.parametrize("micro", [4, 8])
def test_micro_batches_give_the_one_pass_update(micro):
    enc, memory = _setup(group=4)
    x, y = torch.randn(16, 3, 64, 32), torch.arange(16) % 6
    runs = []
    for m in (0, micro):
        e, mem = copy.deepcopy(enc), copy.deepcopy(memory)
        opt = torch.optim.SGD(e.parameters(), lr=0.1)
        parts = warmup_iteration(e, opt, mem, AmpContext("cpu"), WarmupBatch(x, y, m), 0.05, "test")
        runs.append((e, mem, parts["loss"]))
    (one, mem1, loss1), (acc, mem2, loss2) = runs
    assert loss2 == pytest.approx(loss1, rel=1e-5)
    for (name, p1), p2 in zip(one.named_parameters(), acc.parameters()):
        # summation order differs: compare against each tensor's scale, not element by element
        assert (p2.grad - p1.grad).abs().max() <= 1e-4 * p1.grad.abs().max() + 1e-6, name
        assert (p2 - p1).abs().max() <= 1e-5 * p1.abs().max() + 1e-7, name
    for (name, b1), b2 in zip(one.named_buffers(), acc.buffers()):
        torch.testing.assert_close(b2, b1, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(mem2.features, mem1.features, rtol=1e-4, atol=1e-5)


def test_micro_batch_must_hold_whole_bn_groups():
    assert micro_batch_size(0, 0) == 0 and micro_batch_size(128, 64) == 128
    with pytest.raises(ConfigError, match="multiple of warmup.bn_group_size"):
        micro_batch_size(96, 64)
    with pytest.raises(ConfigError, match="bn_group_size > 0"):
        micro_batch_size(64, 0)

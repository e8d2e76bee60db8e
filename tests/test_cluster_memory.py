"""Cluster memory and its loss: centroid initialisation (the shared cluster-means helper), the
cluster-contrast loss and gradient, the momentum update rule, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genreid.cluster.means import cluster_means
from genreid.losses.cluster_contrast import cluster_contrast_loss
from genreid.memory.cluster_memory import ClusterMemory


def _sequential_update(mem: torch.Tensor, x: torch.Tensor, y: torch.Tensor, m: float) -> torch.Tensor:
    """The rule as Cluster-Contrast writes it: a Python loop over the batch, in order."""
    mem = mem.clone()
    for xi, yi in zip(x, y):
        mem[yi] = m * mem[yi] + (1 - m) * xi
        mem[yi] /= mem[yi].norm()
    return mem


def test_centroids_are_normalised_means_ignoring_outliers():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [-1.0, -1.0], [0.6, 0.8]])
    labels = torch.tensor([0, 0, 1, -1, 1])
    c = F.normalize(cluster_means(f, labels), dim=1)
    torch.testing.assert_close(c, torch.tensor([[0.5 ** 0.5, 0.5 ** 0.5], [0.6, 0.8]]))
    torch.testing.assert_close(cluster_means(f, labels)[1], torch.tensor([1.8, 2.4]))  # raw mean
    assert cluster_means(f, torch.full((5,), -1)).shape == (0, 2)


def test_reset_normalises_features_first():
    mem = ClusterMemory(2)
    mem.reset(torch.tensor([[10.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    torch.testing.assert_close(mem.features, torch.tensor([[0.5 ** 0.5, 0.5 ** 0.5]]))


def test_loss_and_gradient_match_the_formula():
    torch.manual_seed(0)
    mem = ClusterMemory(8)
    mem.reset(torch.randn(30, 8), torch.arange(30) % 5)
    x = F.normalize(torch.randn(6, 8), dim=1).requires_grad_(True)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    loss = cluster_contrast_loss(x, mem.features, y, 0.05)
    logits = x.detach() @ mem.features.t() / 0.05
    want = -(logits.log_softmax(1)[torch.arange(6), y]).mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    loss.backward()
    p = logits.softmax(1)
    p[torch.arange(6), y] -= 1
    torch.testing.assert_close(x.grad, p @ mem.features / 0.05 / 6)
    assert not mem.features.requires_grad


@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_update_equals_the_sequential_rule_with_repeated_labels(momentum):
    torch.manual_seed(1)
    mem = ClusterMemory(6, momentum=momentum)
    mem.reset(torch.randn(40, 6), torch.arange(40) % 7)
    x = F.normalize(torch.randn(12, 6), dim=1)
    y = torch.tensor([3, 1, 3, 3, 0, 1, 6, 3, 2, 2, 5, 1])
    want = _sequential_update(mem.features, x, y, momentum)
    mem.update(x, y)
    torch.testing.assert_close(mem.features, want)
    torch.testing.assert_close(mem.features.norm(dim=1), torch.ones(7))
    assert torch.equal(mem.features[4], want[4])  # untouched cluster unchanged


def test_update_extremes():
    torch.manual_seed(2)
    x = F.normalize(torch.randn(3, 4), dim=1)
    y = torch.tensor([1, 1, 0])
    mem = ClusterMemory(4, momentum=0.0)
    mem.reset(torch.randn(4, 4), torch.tensor([0, 1, 0, 1]))
    mem.update(x, y)
    torch.testing.assert_close(mem.features, torch.stack([x[2], x[1]]))  # last sample of each label wins
    keep = ClusterMemory(4, momentum=1.0)
    keep.reset(torch.randn(4, 4), torch.tensor([0, 1, 0, 1]))
    before = keep.features.clone()
    keep.update(x, y)
    torch.testing.assert_close(keep.features, before)


def test_empty_memory_is_a_clear_error():
    with pytest.raises(RuntimeError, match="reset"):
        cluster_contrast_loss(torch.randn(2, 4), ClusterMemory(4).features, torch.tensor([0, 0]), 0.05)


def test_checkpoint_round_trip_restores_a_memory_of_another_size():
    mem = ClusterMemory(4)
    mem.reset(torch.randn(9, 4), torch.arange(9) % 3)
    fresh = ClusterMemory(4)
    fresh.load_state_dict(mem.state_dict())
    assert torch.equal(fresh.features, mem.features) and fresh.num_clusters == 3

"""Instance memory: the update rule, positive and negative sampling, giant clusters never crash."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from genreid.losses.view_invariant import ViewInvariantSettings, info_nce, view_invariant_loss
from genreid.memory.instance_memory import InstanceMemory


def _memory(labels: list[int], dim: int = 4, seed: int = 0) -> InstanceMemory:
    torch.manual_seed(seed)
    mem = InstanceMemory(len(labels), dim)
    mem.initialise(torch.randn(len(labels), dim))
    mem.set_labels(torch.tensor(labels))
    return mem


def test_update_rule_is_normalised_momentum_average():
    mem = InstanceMemory(3, 2)
    mem.initialise(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    assert torch.allclose(mem.features.norm(dim=1), torch.ones(3))
    mem.update(torch.tensor([0]), torch.tensor([[0.0, 10.0]]), momentum=0.2)  # f is normalised first
    assert torch.allclose(mem.features[0], F.normalize(torch.tensor([0.2, 0.8]), dim=0))
    assert torch.allclose(mem.features[1], torch.tensor([0.0, 1.0]))  # untouched
    # duplicates apply in order, exactly as two successive updates
    mem2 = InstanceMemory(1, 2)
    mem2.initialise(torch.tensor([[1.0, 0.0]]))
    mem2.update(torch.tensor([0, 0]), torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), momentum=0.5)
    step1 = F.normalize(torch.tensor([0.5, 0.5]), dim=0)
    assert torch.allclose(mem2.features[0], F.normalize(0.5 * step1 + 0.5 * torch.tensor([-1.0, 0.0]), dim=0))


def test_positives_share_the_label_and_exclude_self_unless_alone():
    mem = _memory([0, 0, 0, 1, 1, 2, -1])
    idx = torch.tensor([0, 1, 2, 3, 4, 5, 6] * 30)
    p = mem.sample_positives(idx)
    assert torch.equal(mem.labels[p][idx != 6], mem.labels[idx][idx != 6])
    alone = (idx == 5) | (idx == 6)
    assert torch.equal(p[alone], idx[alone])
    assert not torch.any(p[~alone] == idx[~alone])
    assert set(p[idx == 0].tolist()) == {1, 2}  # both other members get drawn
    p_incl = mem.sample_positives(idx, include_self=True)
    assert torch.equal(mem.labels[p_incl][idx != 6], mem.labels[idx][idx != 6])
    assert torch.any(p_incl[idx == 0] == 0)


def test_negatives_without_replacement_when_possible_and_outliers_included():
    mem = _memory([0] * 5 + [1] * 5 + [-1] * 3)
    neg = mem.sample_negatives(torch.tensor([0, 7]), k=8)
    assert neg.shape == (2, 8)
    assert set(neg[0].tolist()) == set(range(5, 13))  # all 8 non-cluster-0 slots, each once
    assert not torch.any(mem.labels[neg[0]] == 0)
    assert len(set(neg[1].tolist())) == 8 and set(neg[1].tolist()) <= set(range(13)) - {7}  # everyone else
    assert 7 not in neg[1].tolist()  # an outlier anchor is not its own negative
    assert mem.with_replacement_draws == 0


def test_giant_cluster_samples_with_replacement_instead_of_crashing():
    labels = [0] * 95 + [1, 2, 3, -1, -1]  # a cluster larger than N - K (the authors' crash)
    mem = _memory(labels)
    neg = mem.sample_negatives(torch.tensor([0, 3, 96]), k=64)
    assert neg.shape == (3, 64)
    assert not torch.any(mem.labels[neg[0]] == 0)
    assert set(neg[0].tolist()) <= {95, 96, 97, 98, 99}
    assert mem.with_replacement_draws == 1
    with pytest.raises(ValueError, match="no negatives"):
        _memory([4] * 10).sample_negatives(torch.tensor([0]), k=2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1, 4), min_size=6, max_size=40), st.integers(1, 50), st.integers(0, 10_000))
def test_negatives_never_share_the_anchor_label(labels, k, seed):
    mem = _memory(labels, seed=seed % 7)
    classes = set(labels)
    if len(classes) == 1 and -1 not in classes:
        return  # no negatives exist: covered above
    idx = torch.arange(len(labels))
    g = torch.Generator().manual_seed(seed)
    neg = mem.sample_negatives(idx, k, g)
    lab = torch.tensor(labels)
    for i in range(len(labels)):
        if labels[i] >= 0:
            assert not torch.any(lab[neg[i]] == labels[i])
        assert not torch.any(neg[i] == i)


def test_info_nce_matches_formula_and_view_invariant_terms():
    pos, neg = torch.tensor([0.9, 0.1]), torch.tensor([[0.1, -0.2], [0.3, 0.0]])
    t = 0.04
    logits = torch.cat([pos[:, None], neg], 1) / t
    expected = (-logits[:, 0] + torch.logsumexp(logits, 1)).mean()
    assert torch.allclose(info_nce(pos, neg, t), expected)

    mem = _memory([0, 0, 1, 1, 2, 2], dim=8)
    idx = torch.tensor([0, 2])
    f = torch.randn(2, 8, requires_grad=True)
    f_nv = mem.features[idx].clone().requires_grad_(True)
    torch.manual_seed(1)
    loss_f, parts = view_invariant_loss(f, f_nv, idx, mem, ViewInvariantSettings(num_negatives=4, temperature=0.04))
    assert abs(float(loss_f.detach()) - sum(float(v) for v in parts.values())) < 1e-4
    loss_f.backward()
    assert f.grad is not None and f_nv.grad is not None
    # term 3 with the authors' quirk differs only through its negatives
    torch.manual_seed(1)
    _, quirk = view_invariant_loss(f.detach(), f_nv.detach(), idx, mem, ViewInvariantSettings(4, 0.04, "f_nv"))
    assert float(quirk["vi_self"]) == pytest.approx(float(parts["vi_self"]))
    assert float(quirk["vi_orig_cluster"]) != float(parts["vi_orig_cluster"])
    # same features for both views: the two variants coincide
    torch.manual_seed(2)
    a, _ = view_invariant_loss(f_nv.detach(), f_nv.detach(), idx, mem, ViewInvariantSettings(4, 0.04, "f"))
    torch.manual_seed(2)
    b, _ = view_invariant_loss(f_nv.detach(), f_nv.detach(), idx, mem, ViewInvariantSettings(4, 0.04, "f_nv"))
    assert torch.allclose(a, b)

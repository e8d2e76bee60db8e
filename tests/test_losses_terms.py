"""Reconstruction, prototype and mixing terms: values by hand and stop-gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genreid.joint.mixing import draw_mix, mix, soft_targets
from genreid.losses.prototype import cluster_prototypes, prototype_loss, soft_cross_entropy
from genreid.losses.reconstruction import reconstruction_terms, weighted_sum


def test_reconstruction_terms_values_and_stop_gradient_on_code_target():
    x = torch.zeros(2, 3, 4, 2)
    a = torch.ones(2, 8, requires_grad=True)
    a_rec = torch.zeros(2, 8, requires_grad=True)
    terms = reconstruction_terms(x, x + 0.5, x - 2.0, a, a_rec, torch.full((2, 8), 3.0))
    values = {k: round(float(v.detach()), 6) for k, v in terms.items()}
    assert values == {"rec": 0.5, "cyc": 2.0, "code": 1.0, "cyc_code": 2.0}
    total = weighted_sum(terms, {"rec": 5, "cyc": 5, "code": 5, "cyc_code": 5})
    assert abs(float(total.detach()) - 27.5) < 1e-6
    total.backward()
    assert a.grad is None  # the code target is detached
    assert torch.allclose(a_rec.grad, torch.full((2, 8), -5.0 / 16))  # d(5*L1)/d a_rec, a_rec < a
    with pytest.raises(KeyError, match="cyc"):
        weighted_sum(terms, {"rec": 1, "code": 1, "cyc_code": 1})


def test_prototypes_are_raw_cluster_means_ignoring_outliers():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 3.0], [5.0, 5.0]])
    labels = torch.tensor([0, 0, 1, -1])
    raw = cluster_prototypes(feats, labels)  # the trainer's call: plain means, normalised only by the loss
    assert torch.allclose(raw, torch.tensor([[0.5, 0.5], [0.0, 3.0]]))
    assert torch.allclose(cluster_prototypes(feats, labels, normalise=True), F.normalize(raw, dim=1))


def test_prototype_loss_without_normalisation_uses_raw_features_and_centres():
    """train.gcl_plus.proto_normalise: false (the authors' code): logits = f C^T with f the raw embedding and
    C the plain mean of each cluster's memory slots, no temperature (1.0); the default path is unchanged."""
    torch.manual_seed(0)
    memory = F.normalize(torch.randn(12, 8), dim=1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1, 0])
    means = torch.stack([memory[labels == k].mean(0) for k in range(3)])  # norms < 1: not normalised
    assert (means.norm(dim=1) < 0.99).all()
    protos = cluster_prototypes(memory, labels)
    f, y = 4.0 * torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    raw, _ = prototype_loss(f, y, protos, temperature=1.0, normalise=False)
    torch.testing.assert_close(raw, F.cross_entropy(f @ means.t(), y))
    target = F.one_hot(torch.tensor([1, 2, 0, 0, 2]), 3).float() * 0.3 + F.one_hot(y, 3).float() * 0.7
    both, _ = prototype_loss(f, y, protos, 1.0, False, f_mix=2 * f, soft_target=target)
    torch.testing.assert_close(both - raw, -(target * F.log_softmax(2 * f @ means.t(), 1)).sum(1).mean())
    normed, _ = prototype_loss(f, y, protos, temperature=0.05, normalise=True)
    torch.testing.assert_close(normed, F.cross_entropy(F.normalize(f, dim=1) @ F.normalize(means, dim=1).t() / 0.05, y))


def test_prototype_loss_hard_equals_ce_and_soft_equals_ce_on_one_hot():
    torch.manual_seed(0)
    protos = F.normalize(torch.randn(5, 8), dim=1)
    f, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 3])
    logits = F.normalize(f, dim=1) @ protos.t() / 0.05
    hard, parts = prototype_loss(f, y, protos, temperature=0.05)
    assert torch.allclose(hard, F.cross_entropy(logits, y))
    assert "proto_soft" not in parts
    assert torch.allclose(soft_cross_entropy(logits, F.one_hot(y, 5).float()), F.cross_entropy(logits, y))
    both, parts = prototype_loss(f, y, protos, 0.05, True, f_mix=f, soft_target=F.one_hot(y, 5).float())
    assert torch.allclose(both, 2 * hard) and float(parts["proto_soft"]) == pytest.approx(float(parts["proto_hard"]))
    raw, _ = prototype_loss(f, y, protos, temperature=1.0, normalise=False)  # authors' raw variant
    assert torch.allclose(raw, F.cross_entropy(f @ protos.t(), y))


def test_mix_draw_keeps_first_identity_dominant_and_targets_sum_to_one():
    torch.manual_seed(0)
    lams = [draw_mix(6, 0.6).lam for _ in range(200)]
    assert min(lams) >= 0.5 and max(lams) <= 1.0
    assert 0.6 < sum(lams) / len(lams) < 0.9  # folded Beta(0.6, 0.6) has mean ~0.81
    d = draw_mix(4, 0.6)
    assert sorted(d.perm.tolist()) == [0, 1, 2, 3]
    v = torch.arange(4.0)[:, None]
    assert torch.allclose(mix(v, d), d.lam * v + (1 - d.lam) * v[d.perm])
    t = soft_targets(torch.tensor([0, 1, 1, 2]), d, 3)
    assert torch.allclose(t.sum(1), torch.ones(4))
    assert torch.all(t.max(1).values >= 0.5)

"""LSGAN and R1 values on cases computed by hand, and equality with the per-fake-set formulation."""

from __future__ import annotations

import torch

from genreid.losses.gan import discriminator_loss, lsgan_generator, lsgan_real_fake, r1_penalty
from genreid.models.discriminator import MultiScaleDiscriminator


def test_lsgan_values_by_hand():
    ones, zeros = [torch.ones(2, 1, 4, 2)] * 2, [torch.zeros(2, 1, 4, 2)] * 2
    assert float(lsgan_real_fake(zeros, ones)) == 0.0  # perfect D
    assert float(lsgan_real_fake(ones, zeros)) == 4.0  # 2 scales x (1 + 1)
    assert float(lsgan_generator(ones)) == 0.0
    assert float(lsgan_generator(zeros)) == 4.0  # 2 scales x 2 * mean((0-1)^2)
    half = [torch.full((2, 1, 4, 2), 0.5)]
    assert abs(float(lsgan_generator(half)) - 0.5) < 1e-7


def test_r1_of_linear_critic_is_squared_weight_norm():
    w = torch.tensor([1.0, -2.0, 3.0])
    x = torch.randn(4, 3, requires_grad=True)
    out = (x * w).sum(1)
    assert abs(float(r1_penalty([out], x)) - 14.0) < 1e-5
    # two scales add
    assert abs(float(r1_penalty([out, 2 * out], x)) - 14.0 * 5) < 1e-4


def test_discriminator_loss_equals_authors_per_set_sum():
    torch.manual_seed(0)
    d = MultiScaleDiscriminator(channels=(4, 8), scales=2, res_blocks=1)
    real = torch.randn(3, 3, 32, 16)
    fakes = [torch.randn(3, 3, 32, 16) for _ in range(3)]
    loss, parts = discriminator_loss(d, fakes, real, r1_weight=0.01)
    ref = 0.0
    for f in fakes:  # the authors recompute D(real) and R1 for every fake set
        r = real.clone().requires_grad_(True)
        d_real = d(r)
        ref = ref + lsgan_real_fake(d(f), d_real) + 0.01 * r1_penalty(d_real, r)
    assert torch.allclose(loss, ref, rtol=1e-5, atol=1e-6)
    assert parts["d_r1"] > 0
    loss.backward()  # second-order term back-propagates
    assert all(p.grad is not None for p in d.parameters())


def test_discriminator_loss_does_not_reach_the_generator():
    d = MultiScaleDiscriminator(channels=(4, 8), scales=1, res_blocks=1)
    src = torch.randn(2, 3, 16, 8, requires_grad=True)
    fake = src * 2
    loss, _ = discriminator_loss(d, [fake], torch.randn(2, 3, 16, 8))
    loss.backward()
    assert src.grad is None

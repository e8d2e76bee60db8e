"""A blank (constant) mesh render must give finite gradients through E_str and G.

Before the fix, every instance norm over an exactly constant plane multiplied the gradient by
1/sqrt(eps) ~ 316; through ~20 such layers it overflowed fp32 and E_str's stem got NaN gradients
while the loss stayed finite. The fixed norms must also be bit-identical to the plain formulas on
ordinary (non-constant) inputs, so the default pipeline's numbers do not move.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genreid.config.sections.model import GeneratorWidths
from genreid.models.gan_blocks import AuthorsLayerNorm, InstanceNorm, instance_norm
from genreid.models.generator import build_generator


def test_blank_render_gives_finite_gradients_at_paper_widths():
    torch.manual_seed(0)
    e_str, dec, _ = build_generator(GeneratorWidths(), 2048, 4)  # the paper's widths and depth
    mesh = torch.full((2, 1, 128, 64), -1.0)  # sample 0 blank, as a render that missed the body
    mesh[1] = torch.rand(1, 128, 64) * 2 - 1
    mesh.requires_grad_(True)
    out = dec(e_str(mesh), torch.randn(2, 8192))
    (out - torch.randn_like(out)).abs().mean().backward()
    bad = [n for n, p in [*e_str.named_parameters(), *dec.named_parameters()]
           if p.grad is not None and not p.grad.isfinite().all()]
    assert not bad, f"non-finite gradients in {bad}"
    assert mesh.grad.isfinite().all()
    assert e_str.stem[0].conv.weight.grad.abs().sum() > 0  # the non-blank sample still trains E_str


def test_instance_norm_is_bit_identical_on_ordinary_inputs():
    torch.manual_seed(1)
    x = torch.randn(3, 8, 16, 8, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    g = torch.randn(3, 8, 16, 8)
    y, y_ref = InstanceNorm()(x), nn.InstanceNorm2d(8, affine=False)(x_ref)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    assert torch.equal(y, y_ref) and torch.equal(x.grad, x_ref.grad)
    assert not list(InstanceNorm().state_dict())  # same (empty) state dict as nn.InstanceNorm2d


def test_instance_norm_constant_plane_gives_zero_output_and_gradient():
    x = torch.randn(2, 4, 8, 8)
    x[0, 1] = 0.3
    x.requires_grad_(True)
    y = instance_norm(x)
    y.backward(torch.randn_like(y))
    assert torch.equal(y[0, 1], torch.zeros(8, 8)) and torch.equal(x.grad[0, 1], torch.zeros(8, 8))
    assert torch.equal(y[1], F.instance_norm(x.detach())[1])


def _authors_ln_reference(norm: AuthorsLayerNorm, x: torch.Tensor) -> torch.Tensor:
    """The authors' formula."""
    flat = x.float().reshape(x.shape[0], -1)
    shape = (-1,) + (1,) * (x.dim() - 1)
    mean, std = flat.mean(1).view(shape), flat.std(1).view(shape)
    y = ((x.float() - mean) / (std + norm.eps)).to(x.dtype)
    return y * norm.gamma.view(1, -1, 1, 1) + norm.beta.view(1, -1, 1, 1)


def test_authors_layer_norm_bit_identical_and_safe_on_constant_samples():
    torch.manual_seed(2)
    norm = AuthorsLayerNorm(6)
    x = torch.randn(3, 6, 8, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    g = torch.randn(3, 6, 8, 4)
    (norm(x) * g).sum().backward()
    grads = [p.grad.clone() for p in norm.parameters()]
    norm.zero_grad()
    (_authors_ln_reference(norm, x_ref) * g).sum().backward()
    assert torch.equal(norm(x), _authors_ln_reference(norm, x_ref))
    assert torch.equal(x.grad, x_ref.grad)
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, norm.parameters()))
    blank = torch.full((2, 6, 8, 4), 0.5)
    blank[1] = torch.randn(6, 8, 4)
    blank.requires_grad_(True)
    norm(blank).backward(torch.randn(2, 6, 8, 4))
    assert blank.grad.isfinite().all() and all(p.grad.isfinite().all() for p in norm.parameters())
    assert torch.equal(blank.grad[0], torch.zeros(6, 8, 4))

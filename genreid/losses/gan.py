"""LSGAN objectives and the R1 penalty over a multi-scale discriminator (docs/method.md#one-training-iteration).

Per scale and per fake set the D loss is mean(D(fake)^2) + mean((D(real)-1)^2) + r1_w * R1, as in
the authors' code, which recomputes the real term for every fake set. Here D(real) and R1 are
computed once and multiplied by the number of fake sets: the same loss value and gradient, with a
third of the real-image cost. The G side is 2 * mean((D(fake)-1)^2) per scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def lsgan_real_fake(d_fake: Sequence[torch.Tensor], d_real: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """D side for one fake set: sum over scales of mean(D(fake)^2) [+ mean((D(real)-1)^2)]."""
    loss = sum(o.float().pow(2).mean() for o in d_fake)
    if d_real is not None:
        loss = loss + sum((o.float() - 1).pow(2).mean() for o in d_real)
    return loss


def lsgan_generator(d_fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """G side for one fake set: sum over scales of 2 * mean((D(fake)-1)^2)."""
    return sum(2 * (o.float() - 1).pow(2).mean() for o in d_fake)


def r1_penalty(d_real: Sequence[torch.Tensor], real: torch.Tensor, grad_scale: float = 1.0) -> torch.Tensor:
    """Sum over scales of the mean squared input-gradient norm of D on real images.

    ``real`` must have ``requires_grad=True`` before D was applied; the graph is kept so the
    penalty itself can be back-propagated (a second-order term). ``grad_scale`` is the fp16
    gradient scaler's factor: the outputs are scaled before differentiation (no underflow) and
    the gradient unscaled after, as PyTorch's AMP gradient-penalty recipe does.
    """
    total = real.new_zeros((), dtype=torch.float32)
    for out in d_real:
        (grad,) = torch.autograd.grad(out.float().sum() * grad_scale, real, create_graph=True)
        grad = grad.float() / grad_scale
        total = total + grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()
    return total


def discriminator_loss(discriminator: Callable[[torch.Tensor], list[torch.Tensor]],
                       fakes: Sequence[torch.Tensor], real: torch.Tensor,
                       r1_weight: float = 0.01, grad_scale: float = 1.0
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Full D loss over ``fakes`` (already detached) against ``real``; returns (loss, parts), the parts
    as detached tensors (read with :func:`genreid.engine.guards.host_values`)."""
    n = len(fakes)
    real = real.detach().requires_grad_(r1_weight > 0)
    d_real = discriminator(real)
    # one forward over all fake sets (D has no batch statistics): n sets of equal size make
    # sum_sets mean(D(set)^2) equal to n * mean(D(all)^2)
    fake_term = n * lsgan_real_fake(discriminator(torch.cat([f.detach() for f in fakes])))
    real_term = n * sum((o.float() - 1).pow(2).mean() for o in d_real)
    r1 = r1_penalty(d_real, real, grad_scale) if r1_weight > 0 else real.new_zeros(())
    loss = fake_term + real_term + n * r1_weight * r1
    return loss, {"d_fake": fake_term.detach(), "d_real": real_term.detach(), "d_r1": r1.detach()}

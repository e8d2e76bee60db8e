"""Image and code reconstruction terms of the generator loss (docs/method.md#generator-and-encoder-loss).

Code targets are detached (stop-gradient), so the code terms teach G and, through E_id applied
to the generated image, E_id to reproduce the code, never to move the target itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_terms(x: torch.Tensor, x_rec: torch.Tensor, x_cyc: torch.Tensor, a: torch.Tensor,
                         a_rec: torch.Tensor, a_cyc: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four L1 terms keyed as the loss weights are: rec, cyc, code, cyc_code (unweighted)."""
    target = a.detach().float()
    return {
        "rec": F.l1_loss(x_rec.float(), x.float()),
        "cyc": F.l1_loss(x_cyc.float(), x.float()),
        "code": F.l1_loss(a_rec.float(), target),
        "cyc_code": F.l1_loss(a_cyc.float(), target),
    }


def weighted_sum(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """sum_k weights[k] * terms[k]; a term without a weight is an error (no silent zero)."""
    missing = sorted(set(terms) - set(weights))
    if missing:
        raise KeyError(f"no weight for loss term(s) {missing}")
    total = next(iter(terms.values())).new_zeros(())
    for k, v in terms.items():
        if weights[k]:
            total = total + weights[k] * v
    return total

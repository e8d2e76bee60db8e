"""The GCL view-invariant loss against an instance memory (docs/method.md#view-invariant-loss).

Three InfoNCE terms with the positive at index 0 and one shared set of K negatives per anchor
(slots of other pseudo-labels, outliers included):
1. f_nv vs M[i]   -- a generated view against its own source slot;
2. f_nv vs M[p]   -- a generated view against a random same-cluster slot;
3. f    vs M[p']  -- the original view against another random same-cluster slot.
The authors' code scores term 3's negatives with f_nv (``term3_negatives="f_nv"``); the
default follows the paper's intent (``"f"``). The terms are summed, as in the authors' code.

Without a novel view (``f_nv=None``, the ``control_none`` arm) terms 1 and 2 have no anchor and are
dropped; term 3 alone remains, its negatives scored with ``f`` whatever ``term3_negatives`` says
(there is no f_nv to score them with). That is plain instance-memory contrastive training with a
same-cluster positive: stage 3 minus the generated view.
Similarities are one (B, N) product with the whole bank, then gathered: cheaper than gathering
B x K x D memory rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genreid.memory.instance_memory import InstanceMemory


def info_nce(pos: torch.Tensor, neg: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy with the positive similarity (B,) at index 0 and negatives (B, K)."""
    logits = torch.cat([pos[:, None], neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device))


@dataclass(frozen=True)
class ViewInvariantSettings:
    """The loss's knobs: ``num_negatives`` (K memory slots per anchor), the InfoNCE ``temperature``, the
    features that score term 3's negatives (``term3_negatives``: ``f``, or the authors' ``f_nv``), and
    whether a same-cluster positive may be the anchor's own slot (``positive_includes_self``)."""

    num_negatives: int
    temperature: float
    term3_negatives: str = "f"
    positive_includes_self: bool = False


def view_invariant_loss(f: torch.Tensor, f_nv: torch.Tensor | None, indices: torch.Tensor, memory: InstanceMemory,
                        settings: ViewInvariantSettings,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sum of the three terms for a batch of original (``f``) and positive-view (``f_nv``) features;
    term 3 alone when ``f_nv`` is None. The parts are detached tensors (one host read per step)."""
    num_negatives, temperature = settings.num_negatives, settings.temperature
    term3_negatives, positive_includes_self = settings.term3_negatives, settings.positive_includes_self
    if term3_negatives not in ("f", "f_nv"):
        raise ValueError(f"term3_negatives must be 'f' or 'f_nv', got {term3_negatives!r}")
    if f_nv is None:
        return _original_view_term(f, indices, memory, num_negatives, temperature, positive_includes_self, generator)
    f_hat = F.normalize(f.float(), dim=1)
    nv_hat = F.normalize(f_nv.float(), dim=1)
    bank = memory.features.detach()
    sim_f = f_hat @ bank.t()
    sim_nv = nv_hat @ bank.t()
    idx = indices.to(bank.device)
    p = memory.sample_positives(idx, generator, include_self=positive_includes_self)
    p2 = memory.sample_positives(idx, generator, include_self=positive_includes_self)
    neg = memory.sample_negatives(idx, num_negatives, generator)
    neg_nv = sim_nv.gather(1, neg)
    neg_3 = neg_nv if term3_negatives == "f_nv" else sim_f.gather(1, neg)
    t1 = info_nce(sim_nv.gather(1, idx[:, None])[:, 0], neg_nv, temperature)
    t2 = info_nce(sim_nv.gather(1, p[:, None])[:, 0], neg_nv, temperature)
    t3 = info_nce(sim_f.gather(1, p2[:, None])[:, 0], neg_3, temperature)
    return t1 + t2 + t3, {"vi_self": t1.detach(), "vi_nv_cluster": t2.detach(), "vi_orig_cluster": t3.detach()}


def _original_view_term(f: torch.Tensor, indices: torch.Tensor, memory: InstanceMemory, num_negatives: int,
                        temperature: float, positive_includes_self: bool, generator: torch.Generator | None
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Term 3 only: f vs a random same-cluster slot, negatives scored with f."""
    bank = memory.features.detach()
    sim_f = F.normalize(f.float(), dim=1) @ bank.t()
    idx = indices.to(bank.device)
    p = memory.sample_positives(idx, generator, include_self=positive_includes_self)
    neg = memory.sample_negatives(idx, num_negatives, generator)
    t3 = info_nce(sim_f.gather(1, p[:, None])[:, 0], sim_f.gather(1, neg), temperature)
    return t3, {"vi_orig_cluster": t3.detach()}

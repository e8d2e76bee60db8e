"""GCL instance memory: one L2-normalised slot per training image (docs/method.md#instance-memory).

The only write to the bank is :meth:`InstanceMemory.update`:
``M[i] <- normalize(m * M[i] + (1 - m) * f_i)`` (m = 0.2 in the authors' code).

Pseudo-labels are attached once per epoch. Negatives for an anchor are slots whose label differs
from the anchor's; outliers (-1) are valid negatives of everyone (each outlier is its own class).
The authors draw K negatives without replacement, which crashes when a cluster is larger than
N - K; here they are drawn without replacement when every anchor has at least K candidates and
with replacement otherwise, so a giant cluster never crashes (``with_replacement_draws`` counts
how often that happened, for the log).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def draw_device(generator: torch.Generator | None, like: torch.Tensor) -> torch.device:
    """Where a sampler draws its random numbers: on the memory's device with the global seeded RNG
    (no host round trip of the B x N negatives mask on a GPU), or on the device of an explicit
    ``generator`` (tests pass a CPU one for a device-independent stream). On CPU both are the CPU."""
    return generator.device if generator is not None else like.device


class InstanceMemory(nn.Module):
    def __init__(self, num_slots: int, dim: int):
        super().__init__()
        self.register_buffer("features", torch.zeros(num_slots, dim))
        self.register_buffer("labels", torch.full((num_slots,), -1, dtype=torch.long))
        self.with_replacement_draws = 0

    @property
    def num_slots(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def initialise(self, features: torch.Tensor) -> None:
        """Fill every slot (e.g. with the encoder's features before training), normalised."""
        if features.shape != self.features.shape:
            raise ValueError(f"memory holds {tuple(self.features.shape)}, got features {tuple(features.shape)}")
        self.features.copy_(F.normalize(features.float(), dim=1))

    @torch.no_grad()
    def update(self, indices: torch.Tensor, features: torch.Tensor, momentum: float) -> None:
        """M[i] <- normalize(m * M[i] + (1 - m) * f_i); duplicates in ``indices`` apply in order."""
        f = F.normalize(features.detach().float(), dim=1).to(self.features.device)
        idx = indices.to(self.features.device)
        if idx.unique().numel() != idx.numel():  # rare (samplers with replacement): keep it exact
            for j in range(idx.numel()):
                self.update(idx[j:j + 1], f[j:j + 1], momentum)
            return
        self.features[idx] = F.normalize(momentum * self.features[idx] + (1 - momentum) * f, dim=1)

    @torch.no_grad()
    def set_labels(self, labels: torch.Tensor) -> None:
        """Attach this epoch's pseudo-labels (-1 = outlier); precomputes per-class slot lists."""
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.labels.device)
        if labels.shape != self.labels.shape:
            raise ValueError(f"expected {self.num_slots} labels, got {tuple(labels.shape)}")
        self.labels.copy_(labels)
        self._refresh_classes()

    def _refresh_classes(self) -> None:
        # outliers become singleton classes so "different label" treats them as negatives of all
        lab = self.labels.clone()
        out = lab < 0
        base = int(lab.max().item()) + 1 if (~out).any() else 0
        lab[out] = base + torch.arange(int(out.sum()), device=lab.device)
        order = torch.argsort(lab, stable=True)
        counts = torch.bincount(lab)
        self._classes = lab
        self._order = order
        self._start = torch.cumsum(counts, 0) - counts
        self._count = counts
        self._inverse = torch.empty_like(order)
        self._inverse[order] = torch.arange(order.numel(), device=order.device)

    def _ensure_classes(self) -> None:
        if not hasattr(self, "_classes") or self._classes.shape[0] != self.num_slots:
            self._refresh_classes()

    def sample_positives(self, indices: torch.Tensor, generator: torch.Generator | None = None,
                         include_self: bool = False) -> torch.Tensor:
        """A random slot with the same label as each anchor.

        ``include_self=False`` draws among the other members (the anchor itself only when it is
        alone); the authors' code draws among all members, the anchor included (``True``).
        """
        self._ensure_classes()
        idx = indices.to(self.labels.device)
        cls = self._classes[idx]
        start, count = self._start[cls], self._count[cls]
        if include_self:
            u = torch.rand(idx.shape, generator=generator, device=draw_device(generator, idx)).to(idx.device)
            return self._order[start + (u * count).long().clamp(max=count - 1)]
        # draw among the other members: position in [0, count-1) skipping the anchor's own position
        pos_of_self = self._rank_in_class(idx, cls)
        r = (torch.rand(idx.shape, generator=generator, device=draw_device(generator, idx)).to(idx.device)
             * (count - 1).clamp(min=1))
        r = r.long().clamp(max=(count - 2).clamp(min=0))
        r = r + (r >= pos_of_self).long() * (count > 1).long()
        r = torch.where(count > 1, r, pos_of_self)
        return self._order[start + r]

    def _rank_in_class(self, idx: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        return self._inverse[idx] - self._start[cls]

    def sample_negatives(self, indices: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, k) slots whose label differs from each anchor's; never fails on giant clusters."""
        self._ensure_classes()
        idx = indices.to(self.labels.device)
        cls = self._classes[idx]
        start, count = self._start[cls], self._count[cls]
        available = self.num_slots - count
        fewest = int(available.min())  # the draw's one host read
        if fewest <= 0:
            raise ValueError("every memory slot shares the anchor's label: no negatives exist "
                             "(clustering put all images in one cluster)")
        device = draw_device(generator, idx)
        if fewest >= k:
            allowed = self._classes[None, :] != cls[:, None]
            return torch.multinomial(allowed.float().to(device), k, replacement=False, generator=generator
                                     ).to(idx.device)
        self.with_replacement_draws += 1
        u = torch.rand((idx.shape[0], k), generator=generator, device=device).to(idx.device)
        r = (u * available[:, None]).long().clamp(max=(available - 1)[:, None])
        r = r + (r >= start[:, None]).long() * count[:, None]  # skip the anchor's class block
        return self._order[r]

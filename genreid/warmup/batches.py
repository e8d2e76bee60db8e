"""Cluster-Contrast's training batches for one epoch: PK groups over the pseudo-identities,
``iters_per_epoch`` of them, drawing further sampler passes when one pass gives fewer."""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.v2 as T

from genreid.data.samplers import MultiGallerySampler, RandomIdentitySampler
from genreid.errors import GenreidError


def pk_batches(labels: np.ndarray, camids: np.ndarray, batch_size: int, num_instances: int, seed: int,
               iterations: int, sampler: str = "pk_cameras") -> list[list[int]]:
    """``iterations`` full PK batches; each sampler pass is cut into batches (the partial rest dropped).
    ``sampler``: ``multi_gallery`` (Cluster-Contrast) or ``pk_cameras`` (genreid's round-robin groups)."""
    if sampler == "multi_gallery":
        sampler = MultiGallerySampler(labels, camids, num_instances, seed)
    else:
        sampler = RandomIdentitySampler(labels, camids, batch_size, num_instances, seed)
    out: list[list[int]] = []
    while len(out) < iterations:
        order = list(iter(sampler))
        full = len(order) // batch_size
        if full == 0:
            clustered = int((np.asarray(labels) >= 0).sum())
            raise GenreidError(f"the warm-up sampler produced no full batch this epoch: one pass over the "
                               f"{clustered} clustered images yields {len(order)}, fewer than warmup.batch_size "
                               f"{batch_size}",
                               f"lower warmup.batch_size to at most {len(order)} (a multiple of warmup.num_instances "
                               f"{num_instances}); if few images were clustered, check warmup.cluster")
        out += [order[i * batch_size:(i + 1) * batch_size] for i in range(full)]
    return out[:iterations]


def augment_batch(images: torch.Tensor) -> torch.Tensor:
    """Cluster-Contrast's training augmentation, drawn per image from the global RNG: horizontal
    flip, pad (10 px at 256x128, scaled) + random crop, random erasing (p 0.5)."""
    h, w = images.shape[-2:]
    pad = max(1, round(10 * h / 256))
    t = T.Compose([T.RandomHorizontalFlip(), T.Pad(pad), T.RandomCrop((h, w)), T.RandomErasing(p=0.5, value=0)])
    return torch.stack([t(img) for img in images])

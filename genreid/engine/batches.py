"""Batches as lists of dataset rows, planned for a whole epoch before it starts.

A plan depends only on (seed, epoch) and the epoch's restored state, so a resumed epoch skips the
batches already trained without loading them; the loader has its own generator and never touches
the global RNG (which the checkpoint carries).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from torch.utils.data import DataLoader, Dataset

from genreid.data.loader import ImageDataset, seed_worker
from genreid.utils.seeding import torch_generator

log = logging.getLogger(__name__)
_NOTED: set[tuple[str, str]] = set()  # (key, kind) already reported in this process


def epoch_batches(indices: Sequence[int] | np.ndarray, batch_size: int, stream: int) -> list[list[int]]:
    """A shuffle of ``indices`` cut into full batches (drop_last), the same for the same ``stream``
    (the epoch's :func:`genreid.utils.seeding.stream_seed` with purpose ``batches``)."""
    order = np.random.default_rng(int(stream)).permutation(np.asarray(indices, dtype=np.int64))
    n = len(order) // batch_size
    return [order[i * batch_size:(i + 1) * batch_size].tolist() for i in range(n)]


def cap_batches(batches: list[list[int]], cap: int | None, key: str, images: str) -> list[list[int]]:
    """The first ``cap`` batches of an epoch's plan. ``cap`` (``pretrain.iters_per_epoch``,
    ``train.iters_per_epoch``) limits an epoch and never adds batches: asking for more than one pass
    gives runs one pass, which is warned about once per process, since it reads like a count."""
    if cap is None:
        return batches
    kind = "short" if cap > len(batches) else "capped" if cap < len(batches) else ""
    if kind and (key, kind) not in _NOTED:
        _NOTED.add((key, kind))
        if kind == "short":
            log.warning("%s is %d, but one pass over the %s gives %d batches: the epoch runs %d. The key is a "
                        "cap on the iterations of an epoch, not a count; set it to null (one pass) or lower it",
                        key, cap, images, len(batches), len(batches))
        else:
            log.info("%s caps each epoch at %d of the %d batches one pass over the %s gives", key, cap,
                     len(batches), images)
    return batches[:cap]


def batch_loader(dataset: Dataset, batches: list[list[int]], seed: int, num_workers: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """A loader over planned batches; worker seeds derive from ``seed`` (the epoch's ``loader`` stream)."""
    return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, worker_init_fn=seed_worker,
                      generator=torch_generator(seed), pin_memory=pin_memory,
                      persistent_workers=False)


CACHE_LIMIT_BYTES = 1 << 30  # decoded images stay in memory when a split fits in 1 GB


def image_dataset(df, height: int, width: int) -> ImageDataset:
    """The split's images at network size, decoded once when they fit in memory (SynthReID does)."""
    return ImageDataset(df, height, width, cache=len(df) * 3 * height * width * 4 <= CACHE_LIMIT_BYTES)

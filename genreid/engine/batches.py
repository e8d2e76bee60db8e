"""Batches as lists of dataset rows, planned for a whole epoch before it starts.

A plan depends only on (seed, epoch) and the epoch's restored state, so a resumed epoch skips the
batches already trained without loading them; the loader has its own generator and never touches
the global RNG (which the checkpoint carries).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import DataLoader, Dataset

from genreid.data.loader import ImageDataset, seed_worker
from genreid.utils.seeding import torch_generator


def epoch_batches(indices: Sequence[int] | np.ndarray, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """A seeded shuffle of ``indices`` cut into full batches (drop_last), the same for (seed, epoch)."""
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(np.asarray(indices, dtype=np.int64))
    n = len(order) // batch_size
    return [order[i * batch_size:(i + 1) * batch_size].tolist() for i in range(n)]


def batch_loader(dataset: Dataset, batches: list[list[int]], seed: int, num_workers: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """A loader over planned batches; worker seeds derive from ``seed``."""
    return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, worker_init_fn=seed_worker,
                      generator=torch_generator(seed), pin_memory=pin_memory,
                      persistent_workers=False)


CACHE_LIMIT_BYTES = 1 << 30  # decoded images stay in memory when a split fits in 1 GB


def image_dataset(df, height: int, width: int) -> ImageDataset:
    """The split's images at network size, decoded once when they fit in memory (SynthReID does)."""
    return ImageDataset(df, height, width, cache=len(df) * 3 * height * width * 4 <= CACHE_LIMIT_BYTES)

"""Samplers the trainers need: PK identity batches with camera diversity, and a plain shuffle.

Both are deterministic from ``(seed, epoch)``: the epoch advances on each ``__iter__`` (or is
set with :meth:`set_epoch` after a resume), so consecutive epochs differ and a rerun repeats.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from genreid.errors import ConfigError

log = logging.getLogger(__name__)


class _EpochSampler(Sampler[int]):
    def __init__(self, seed: int):
        self.seed = int(seed)
        self.epoch = 0
        self._cache: tuple[int, list[int]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def _indices(self) -> list[int]:
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._build(self._rng()))
        return self._cache[1]

    def _build(self, rng: np.random.Generator) -> list[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._indices())

    def __iter__(self) -> Iterator[int]:
        indices = self._indices()
        self.epoch += 1
        return iter(indices)


class RandomIdentitySampler(_EpochSampler):
    """PK sampling: each batch holds P = batch_size / K identities with K images each.

    Within an identity, images are drawn round-robin over its cameras (shuffled), so a group of K
    covers as many cameras as the identity has; identities with fewer than K images are padded
    by sampling with replacement. ``pids`` may be pseudo-labels; ``-1`` (outliers) never appear.
    """

    def __init__(self, pids: Sequence[int], camids: Sequence[int], batch_size: int, num_instances: int, seed: int):
        super().__init__(seed)
        if num_instances < 1 or batch_size % num_instances:
            raise ConfigError(f"batch_size ({batch_size}) must be a multiple of num_instances ({num_instances})",
                              "change batch_size or num_instances in the training section")
        if len(pids) != len(camids):
            raise ValueError(f"pids ({len(pids)}) and camids ({len(camids)}) differ in length")
        self.num_instances = num_instances
        self.ids_per_batch = batch_size // num_instances
        by_pid: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        for index, (pid, cam) in enumerate(zip(pids, camids)):
            if int(pid) >= 0:
                by_pid[int(pid)][int(cam)].append(index)
        self.by_pid = {pid: dict(cams) for pid, cams in sorted(by_pid.items())}
        if not self.by_pid:
            raise ConfigError("RandomIdentitySampler got no labelled sample (every pid is -1)",
                              "check the clustering step (eps, min_samples) that produced the pseudo-labels")
        if len(self.by_pid) < self.ids_per_batch:
            log.warning("only %d labelled identities for %d per batch; batches will repeat identities",
                        len(self.by_pid), self.ids_per_batch)

    def _groups(self, cams: dict[int, list[int]], rng: np.random.Generator) -> list[list[int]]:
        """Groups of K indices for one identity, each spread over as many cameras as possible."""
        per_cam = [list(rng.permutation(cams[c])) for c in rng.permutation(sorted(cams))]
        order: list[int] = []
        while any(per_cam):
            for lst in per_cam:
                if lst:
                    order.append(int(lst.pop()))
        k = self.num_instances
        if len(order) < k:
            order += [int(i) for i in rng.choice(order, size=k - len(order), replace=True)]
        return [order[i:i + k] for i in range(0, len(order) - k + 1, k)]

    def _build(self, rng: np.random.Generator) -> list[int]:
        groups = {pid: self._groups(cams, rng) for pid, cams in self.by_pid.items()}
        out: list[int] = []
        if len(groups) < self.ids_per_batch:
            # Fewer identities than P: identities repeat within a batch (a fresh group when one runs
            # out) so every batch keeps the loader's size; a shorter batch would be dropped and the
            # epoch would yield nothing.
            pids = list(groups)
            for _ in range(max(1, sum(len(g) for g in groups.values()) // self.ids_per_batch)):
                for pid in rng.choice(pids, size=self.ids_per_batch, replace=True):
                    if not groups[int(pid)]:
                        groups[int(pid)] = self._groups(self.by_pid[int(pid)], rng)
                    out.extend(groups[int(pid)].pop())
            return out
        available = [pid for pid in groups if groups[pid]]
        while len(available) >= self.ids_per_batch:
            chosen = rng.choice(available, size=self.ids_per_batch, replace=False)
            for pid in chosen:
                out.extend(groups[int(pid)].pop())
                if not groups[int(pid)]:
                    available.remove(int(pid))
        return out


class MultiGallerySampler(_EpochSampler):
    """Cluster-Contrast's ``RandomMultipleGallerySampler`` semantics: per pass, identities in random order,
    one group per identity: a random anchor, then ``num_instances - 1`` images of the same identity from
    *other cameras* (without replacement when at least ``num_instances`` such images exist, else with
    replacement, as Cluster-Contrast decides), or, with no other camera, from the identity's other images.
    An identity with a single image repeats it (Cluster-Contrast would emit a short group that
    misaligns every later batch). ``-1`` labels (outliers) never appear.
    """

    def __init__(self, pids: Sequence[int], camids: Sequence[int], num_instances: int, seed: int):
        super().__init__(seed)
        if num_instances < 1:
            raise ConfigError(f"num_instances must be >= 1, got {num_instances}", "set warmup.num_instances")
        self.num_instances = num_instances
        by_pid: dict[int, list[int]] = defaultdict(list)
        for index, pid in enumerate(pids):
            if int(pid) >= 0:
                by_pid[int(pid)].append(index)
        self.by_pid = dict(sorted(by_pid.items()))
        self.camids = np.asarray(camids)
        if not self.by_pid:
            raise ConfigError("MultiGallerySampler got no labelled sample (every pid is -1)",
                              "check the clustering step (eps, min_samples) that produced the pseudo-labels")

    def _build(self, rng: np.random.Generator) -> list[int]:
        out: list[int] = []
        k = self.num_instances - 1
        for pid in rng.permutation(list(self.by_pid)):
            members = self.by_pid[int(pid)]
            anchor = int(rng.choice(members))
            others = [i for i in members if self.camids[i] != self.camids[anchor]]
            if not others:
                others = [i for i in members if i != anchor]
            out.append(anchor)
            if k == 0:
                continue
            if not others:
                out.extend([anchor] * k)
                continue
            out.extend(int(i) for i in rng.choice(others, size=k, replace=len(others) < self.num_instances))
        return out

"""Seeding: the same seed gives the same run on CPU.

``runtime.deterministic`` (default true) trades speed for bit-reproducibility:

- true: deterministic algorithms are requested where torch offers them (warn only where it has
  none), cudnn.benchmark off (it picks kernels by timing, so the choice varies between runs) and
  cudnn.deterministic on. ``torch.utils.deterministic.fill_uninitialized_memory`` is turned off:
  under deterministic algorithms torch otherwise NaN-fills every ``empty`` tensor (8.6 % of a
  profiled step) only to make reads of uninitialised memory repeatable; genreid never reads
  uninitialised memory, so results stay bit-identical (tests/engine/test_seeding.py).
  The request goes to torch's flag directly: ``torch.use_deterministic_algorithms`` also imports
  ``torch._inductor`` to set its compiler flag, 2.4 s per stage on 2 cores, and genreid compiles
  nothing; the compiler flag is passed on through ``TORCHINDUCTOR_DETERMINISTIC`` instead.
- false (fast mode): the authors' setting, cudnn.benchmark on, no deterministic algorithms; runs
  with the same seed may differ in the last bits on GPU (scatter/index_add atomics, kernel choice).

Every random stream of a training stage derives from the run's ``seed`` through one function,
:func:`stream_seed` ``(seed, stage, epoch, purpose, rank)``: a hash, so that no two combinations share
a stream (with ``seed + epoch``, seed 1 epoch 1 and seed 2 epoch 0 would be the same stream, and the
"independent" seeds of a multi-seed table would not be). The purposes:

- ``init``: the global RNGs when a stage starts (new layers, a fresh generator); epoch 0;
- ``batches``: the epoch's batch plan (shuffle, P x K sampler);
- ``loader``: the DataLoader's generator, from which each worker's seed derives;
- ``draws``: the global RNGs at the start of each epoch: augmentation, negatives, novel-view
  angles, identity mixing, in the order the iterations ask (a resumed epoch restores them from the
  checkpoint). The warm-up and source stages augment each rank's own images and pass the rank;
  stages 2 and 3 draw for the global batch on every rank alike and pass rank 0.

Clustering (DBSCAN on k-reciprocal distances) draws nothing.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys

import numpy as np

from genreid.utils.versions import STREAM_SCHEME_VERSION


def stream_seed(seed: int, stage: str, epoch: int, purpose: str, rank: int = 0) -> int:
    """The 63-bit seed of one random stream: SHA-256 of the canonical ``(seed, stage, epoch, purpose,
    rank)``, so distinct combinations give unrelated streams (see the module docstring)."""
    key = (f"genreid-stream/{STREAM_SCHEME_VERSION}|seed={int(seed)}|stage={stage}|epoch={int(epoch)}"
           f"|purpose={purpose}|rank={int(rank)}")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def seed_global_rngs(value: int) -> None:
    """Python's, numpy's (its legacy global RNG takes 32 bits) and torch's global RNGs from ``value``."""
    import torch

    random.seed(value)
    np.random.seed(value % (2**32))
    torch.manual_seed(value)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    import torch

    seed_global_rngs(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed % (2**32)))
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        request_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
        request_deterministic_algorithms(False)


def request_deterministic_algorithms(mode: bool, warn_only: bool = False) -> None:
    """``torch.use_deterministic_algorithms(mode, warn_only=...)`` without importing the compiler.

    The public function sets torch's flag and ``torch._inductor.config.deterministic``; importing the
    latter costs 2.4 s, paid by every stage. When the compiler is already loaded the public function is
    used; otherwise the flag is set directly and the compiler's, read from the environment when it is
    first imported, is set there.
    """
    import torch

    if "torch._inductor.config" in sys.modules or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        return
    os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1" if mode else "0"
    torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker seeding derived from torch's per-worker seed (repeatable runs)."""
    import torch

    seed = torch.initial_seed() % (2**32)
    np.random.seed(seed)
    random.seed(seed)


def torch_generator(seed: int):
    import torch

    g = torch.Generator()
    g.manual_seed(seed)
    return g

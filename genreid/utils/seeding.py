"""Seeding: the same seed gives the same run on CPU.

``runtime.deterministic`` (default true) trades speed for bit-reproducibility:

- true: deterministic algorithms are requested where torch offers them (warn only where it has
  none), cudnn.benchmark off (it picks kernels by timing, so the choice varies between runs) and
  cudnn.deterministic on. ``torch.utils.deterministic.fill_uninitialized_memory`` is turned off:
  under deterministic algorithms torch otherwise NaN-fills every ``empty`` tensor (8.6 % of a
  profiled step) only to make reads of uninitialised memory repeatable; genreid never reads
  uninitialised memory, so results stay bit-identical (tests/engine/test_seeding.py).
- false (fast mode): the authors' setting, cudnn.benchmark on, no deterministic algorithms; runs
  with the same seed may differ in the last bits on GPU (scatter/index_add atomics, kernel choice).
"""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int, deterministic: bool = True) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
        torch.use_deterministic_algorithms(False)


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

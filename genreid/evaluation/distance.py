"""Query x gallery distances from features: the default is squared Euclidean on L2-normalised
features, 2 - 2cos (docs/data_and_evaluation.md#evaluation-protocol).

One matrix product per block of queries; the result is written into a preallocated float32 array
so a MSMT17-size matrix (11,659 x 82,161, 3.8 GB) never exists twice; a matrix larger than the memory
lives in a temporary file instead (:func:`allocate_distances`).
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from genreid.errors import GenreidError

log = logging.getLogger(__name__)
Metric = Literal["euclidean", "cosine"]
METRICS: tuple[str, ...] = ("euclidean", "cosine")


def _features(x: Any, name: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim != 2 or t.shape[0] == 0:
        raise GenreidError(f"{name} must be a non-empty N x D feature matrix, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    return t


def allocate_distances(rows: int, cols: int) -> np.ndarray:
    """A rows x cols float32 array in memory, or, when memory cannot hold it, in an unnamed temporary file
    (``TMPDIR``) that the system pages in block by block; ranking reads it in chunks either way."""
    try:
        return np.empty((rows, cols), dtype=np.float32)
    except MemoryError:
        pass
    need = rows * cols * 4 / 1e9
    log.warning("a %d x %d distance matrix (%.1f GB) does not fit in memory: keeping it in a temporary file "
                "in %s (slower)", rows, cols, need, tempfile.gettempdir())
    try:
        return np.memmap(tempfile.TemporaryFile(), dtype=np.float32, mode="w+", shape=(rows, cols))
    except (OSError, ValueError, MemoryError) as exc:
        raise GenreidError(f"the {rows} x {cols} distance matrix needs {need:.1f} GB, which fits neither in memory "
                           f"nor in the temporary folder {tempfile.gettempdir()} ({exc})",
                           "point TMPDIR at a disk with that much room, or evaluate a smaller query set at a "
                           "time") from None


def compute_distance(query: Any, gallery: Any, metric: Metric = "euclidean", *, normalize: bool = True,
                     device: torch.device | str | None = None, block_rows: int = 4096,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Q x G float32 distances.

    ``euclidean``: squared Euclidean distance (``2 - 2 q.g`` when ``normalize``; the full
    ``|q|^2 + |g|^2 - 2 q.g`` otherwise), clamped at 0 against rounding. ``cosine``: ``1 - cos``
    (features are always normalised for it). Computed on ``device`` (default: the features' own).
    """
    if metric not in METRICS:
        raise GenreidError(f"unknown distance metric {metric!r}", f"use one of {', '.join(METRICS)}")
    q, g = _features(query, "query features"), _features(gallery, "gallery features")
    if q.shape[1] != g.shape[1]:
        raise GenreidError(f"query features have dimension {q.shape[1]} but gallery features {g.shape[1]}",
                           "extract both with the same model")
    dev = torch.device(device) if device is not None else q.device
    dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    g = g.to(dev, dtype)
    if normalize or metric == "cosine":
        g = F.normalize(g, dim=1)
    g_sq = (g * g).sum(1)
    if out is None:
        out = allocate_distances(q.shape[0], g.shape[0])
    elif out.shape != (q.shape[0], g.shape[0]):
        raise GenreidError(f"output array has shape {out.shape}, expected {(q.shape[0], g.shape[0])}")
    for s0 in range(0, q.shape[0], block_rows):
        qb = q[s0:s0 + block_rows].to(dev, dtype)
        if normalize or metric == "cosine":
            qb = F.normalize(qb, dim=1)
        sim = qb @ g.T
        if metric == "cosine":
            block = 1.0 - sim
        elif normalize:
            block = (2.0 - 2.0 * sim).clamp_min_(0.0)
        else:
            block = ((qb * qb).sum(1, keepdim=True) + g_sq[None, :] - 2.0 * sim).clamp_min_(0.0)
        out[s0:s0 + block.shape[0]] = block.to(torch.float32).cpu().numpy()
    return out

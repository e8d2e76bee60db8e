"""Datasets: registry, loading, preparation, manifests, image loaders and samplers.

``load_dataset(name, root)`` parses a dataset tree the way torchreid does (junk dropped,
distractors kept, train pids relabelled); the ``prepare`` stage turns an archive into
manifests (:mod:`genreid.data.prepare`) that every later stage reads with
:func:`genreid.data.manifest.load_prepared`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genreid.data.base import ReidDataset, ReidSplits, SplitCounts
from genreid.data.manifest import load_prepared
from genreid.data.registry import dataset_names, get_dataset_class, register_dataset

__all__ = ["ReidDataset", "ReidSplits", "SplitCounts", "dataset_names", "get_dataset_class", "load_dataset",
           "load_prepared", "register_dataset"]


def load_dataset(name: str, root: str | Path, *, expected_counts: Any = "off", **kwargs: Any) -> ReidSplits:
    """Parse the dataset tree under ``root`` into train/query/gallery frames (path, pid, camid, raw_pid).

    Every problem (missing folder, unparsable name, count mismatch when ``expected_counts`` is
    ``"canonical"`` or a mapping) is reported in one :class:`~genreid.errors.DataError`.
    ``kwargs`` go to the dataset class (MSMT17's ``version``).
    """
    return get_dataset_class(name)(root, **kwargs).load(expected_counts)

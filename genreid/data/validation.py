"""The validation split: a seeded fraction of training identities, carved before training ever starts.

Validation is evaluated as query = gallery with the camera filter, so only identities seen by
at least two cameras are eligible (others would have no valid match). Val keeps the raw pids;
the remaining training identities are relabelled 0..N-1 in ascending raw-pid order.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from genreid.data.base import relabel
from genreid.errors import DataError

log = logging.getLogger(__name__)
MIN_TRAIN_IDS = 2  # a single identity leaves no negatives to contrast with


def carve_validation(train: pd.DataFrame, fraction: float, seed: int,
                     dataset: str = "dataset") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``train`` (columns path, raw_pid, camid, ...) into (train relabelled, val with raw pids)."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"data.val_fraction must be in [0, 1), got {fraction}", "set data.val_fraction: 0.05")
    ids = np.array(sorted(train["raw_pid"].unique()), dtype=np.int64)
    cams_per_id = train.groupby("raw_pid")["camid"].nunique()
    eligible = np.array(sorted(cams_per_id.index[cams_per_id >= 2]), dtype=np.int64)
    n_val = int(round(fraction * len(ids)))
    if fraction > 0 and n_val == 0:
        n_val = 1
    if n_val > len(eligible):
        log.warning("%s: only %d training ids have >=2 cameras; validation gets %d ids instead of %d",
                    dataset, len(eligible), len(eligible), n_val)
        n_val = len(eligible)
    if fraction > 0 and n_val == 0:
        raise DataError(f"{dataset}: no training identity appears in two cameras, so no validation split can be "
                        "carved", "set data.val_fraction: 0 for this dataset")
    if len(ids) - n_val < MIN_TRAIN_IDS:
        raise DataError(f"{dataset}: data.val_fraction={fraction} carves {n_val} of {len(ids)} training identities "
                        f"for validation and leaves {len(ids) - n_val}; training needs at least {MIN_TRAIN_IDS} "
                        "(clustering and the contrastive losses need other identities as negatives)",
                        "use a dataset with more training identities (SynthReID: data.<name>.num_train_ids), or "
                        "lower data.val_fraction (0 carves no validation split)")
    rng = np.random.default_rng(seed)
    chosen = set(int(p) for p in rng.choice(eligible, size=n_val, replace=False)) if n_val else set()
    is_val = train["raw_pid"].isin(chosen)
    val = train[is_val].copy()
    val["pid"] = val["raw_pid"].astype("int64")
    rest = train[~is_val].copy()
    rest["pid"] = relabel(rest["raw_pid"])
    return rest.reset_index(drop=True), val.reset_index(drop=True)

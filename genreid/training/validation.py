"""Model selection on the validation split carved from training identities (DATA_AND_EVAL.md).

The split is its own query and gallery: each image queries all others, and same-pid same-camera
items are removed as in the test protocol (which also removes the query itself). Query/gallery
of the test split are never used for selection.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from genreid.evaluation.distance import compute_distance
from genreid.evaluation.extract import extract_features
from genreid.evaluation.rank import evaluate_rank


def validate(model: nn.Module, val_set: Dataset, batch_size: int, device: torch.device | str) -> dict[str, float]:
    """{'mAP', 'R1'} as fractions on the validation split."""
    feats = extract_features(model, val_set, batch_size=batch_size, device=device)
    dist = compute_distance(feats.features, feats.features)
    res = evaluate_rank(dist, feats.pids, feats.pids, feats.camids, feats.camids)
    return {"mAP": float(res.mAP), "R1": float(res.rank(1))}

"""Features for clustering and validation, sharded over ranks; the test protocol's ranking.

Validation uses the same path as the test evaluation (:mod:`genreid.evaluation`): L2-normalised
features, squared Euclidean distance, camera-filtered CMC/mAP with the split as its own query and
gallery. Buffers are made identical on every rank first, so every rank computes the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from genreid.engine.dist import DistInfo, gather_sharded, shard_indices, sync_buffers, unwrap
from genreid.errors import GenreidError, TrainingDiverged
from genreid.evaluation.distance import compute_distance
from genreid.evaluation.extract import Features, extract_features
from genreid.evaluation.rank import evaluate_rank


def extract_all(model: nn.Module, dataset: Dataset, info: DistInfo, batch_size: int, num_workers: int = 0,
                where: str = "", fix: str = "lower the learning rate") -> Features:
    """Normalised features of the whole ``dataset`` in order, on every rank (each extracts a shard)."""
    model = unwrap(model)
    sync_buffers([model], info)
    part = Subset(dataset, shard_indices(len(dataset), info).tolist()) if info.enabled else dataset
    try:
        feats = extract_features(model, part, batch_size=batch_size, device=info.device, num_workers=num_workers)
    except GenreidError as exc:
        if "NaN/inf" not in str(exc):
            raise
        raise TrainingDiverged(f"the encoder's features became NaN/inf {where}", fix) from exc
    if not info.enabled:
        return feats
    n = len(dataset)
    full = gather_sharded(feats.features.to(info.device), n, info).cpu()
    pids = gather_sharded(torch.from_numpy(feats.pids).to(info.device), n, info).cpu().numpy()
    camids = gather_sharded(torch.from_numpy(feats.camids).to(info.device), n, info).cpu().numpy()
    return Features(features=full, pids=pids, camids=camids)


def validate(model: nn.Module, val_set: Dataset, info: DistInfo, batch_size: int, num_workers: int = 0,
             where: str = "", fix: str = "lower the learning rate") -> dict[str, float]:
    """{'mAP', 'R1'} as fractions on the validation split (query = gallery, camera filter)."""
    feats = extract_all(model, val_set, info, batch_size, num_workers, where, fix)
    dist = compute_distance(feats.features, feats.features)
    res = evaluate_rank(dist, feats.pids, feats.pids, feats.camids, feats.camids)
    return {"mAP": float(res.mAP), "R1": float(res.rank(1))}

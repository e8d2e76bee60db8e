"""From features to metrics: distances, optional re-ranking, ranking metrics.

:class:`ReidEvaluator` follows FastReID's ``reset / process / evaluate`` so a trainer can feed it
batch by batch; the first ``num_query`` items are queries and the rest the gallery. With
``num_query=None`` every item is both (the validation split, docs/data_and_evaluation.md#model-selection):
the query itself is then always removed from its own gallery.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from genreid.errors import GenreidError
from genreid.evaluation.distance import Metric, compute_distance
from genreid.evaluation.rank import Protocol, RankResult, evaluate_rank
from genreid.evaluation.rerank import k_reciprocal_rerank


@dataclass(frozen=True)
class RerankParams:
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3


@dataclass(frozen=True)
class EvalOptions:
    """How features become metrics: the distance ``metric``, the ranking ``protocol``, the CMC length
    ``max_rank``, the same-identity same-camera ``camera_filter``, optional k-reciprocal ``rerank``, and the
    ``device`` the distances are computed on (None: the features' own)."""

    metric: Metric = "euclidean"
    protocol: Protocol = "rank"
    max_rank: int = 50
    camera_filter: bool = True
    rerank: RerankParams | None = None
    device: torch.device | str | None = None


@dataclass(frozen=True)
class Evaluation:
    result: RankResult
    distmat: np.ndarray


def evaluate_features(q_feats: Any, g_feats: Any, q_pids: Any, g_pids: Any, q_camids: Any = None,
                      g_camids: Any = None, options: EvalOptions = EvalOptions()) -> Evaluation:
    """Distances (optionally re-ranked) between query and gallery features, then ranking metrics."""
    o = options
    distmat = compute_distance(q_feats, g_feats, o.metric, device=o.device)
    if o.rerank is not None:
        q_q = compute_distance(q_feats, q_feats, o.metric, device=o.device)
        g_g = compute_distance(g_feats, g_feats, o.metric, device=o.device)
        distmat = k_reciprocal_rerank(distmat, q_q, g_g, o.rerank.k1, o.rerank.k2, o.rerank.lambda_value)
    result = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=o.max_rank, protocol=o.protocol,
                           camera_filter=o.camera_filter)
    return Evaluation(result=result, distmat=distmat)


def evaluate_self(feats: Any, pids: Any, camids: Any = None, options: EvalOptions = EvalOptions()) -> Evaluation:
    """Every item against all others (query = gallery). Without a camera filter each item gets its
    own camera id, so the filter removes exactly the query itself and nothing else."""
    pids = np.asarray(pids)
    camera_filter = options.camera_filter
    if not camera_filter or camids is None:
        camids = np.arange(len(pids))
    out = evaluate_features(feats, feats, pids, pids, camids, camids, replace(options, camera_filter=True))
    return Evaluation(result=replace(out.result, camera_filter=camera_filter), distmat=out.distmat)


class ReidEvaluator:
    """Accumulates (features, pids, camids) batches, then evaluates them in one go."""

    def __init__(self, num_query: int | None, *, metric: Metric = "euclidean", protocol: Protocol = "rank",
                 max_rank: int = 50, camera_filter: bool = True, rerank: RerankParams | None = None,
                 device: torch.device | str | None = None):
        self.num_query = num_query
        self.options = EvalOptions(metric=metric, protocol=protocol, max_rank=max_rank, camera_filter=camera_filter,
                                   rerank=rerank, device=device)
        self.reset()

    def reset(self) -> None:
        self._feats: list[torch.Tensor] = []
        self._pids: list[np.ndarray] = []
        self._camids: list[np.ndarray] = []

    def process(self, features: torch.Tensor, pids: Any, camids: Any) -> None:
        """Add one batch (features are L2-normalised at evaluation, so raw embeddings are fine)."""
        self._feats.append(torch.as_tensor(features).detach().float().cpu())
        self._pids.append(np.asarray(pids).reshape(-1))
        self._camids.append(np.asarray(camids).reshape(-1))

    def evaluate(self) -> Evaluation:
        if not self._feats:
            raise GenreidError("the evaluator received no batches", "call process() before evaluate()")
        feats = torch.cat(self._feats)
        pids, camids = np.concatenate(self._pids), np.concatenate(self._camids)
        if self.num_query is None:
            return evaluate_self(feats, pids, camids, self.options)
        nq = self.num_query
        if not 0 < nq < len(pids):
            raise GenreidError(f"num_query={nq} must leave at least one query and one gallery item of "
                               f"{len(pids)}")
        return evaluate_features(feats[:nq], feats[nq:], pids[:nq], pids[nq:], camids[:nq], camids[nq:],
                                 self.options)

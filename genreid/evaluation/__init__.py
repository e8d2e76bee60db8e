"""ReID evaluation: ranking metrics, distances, re-ranking, feature extraction, evaluator."""

from genreid.evaluation.distance import compute_distance
from genreid.evaluation.evaluator import (
    EvalOptions,
    Evaluation,
    ReidEvaluator,
    RerankParams,
    evaluate_features,
    evaluate_self,
)
from genreid.evaluation.rank import PROTOCOLS, RankResult, evaluate_rank
from genreid.evaluation.rerank import k_reciprocal_rerank

__all__ = ["PROTOCOLS", "EvalOptions", "Evaluation", "RankResult", "ReidEvaluator", "RerankParams", "compute_distance",
           "evaluate_features", "evaluate_rank", "evaluate_self", "k_reciprocal_rerank"]

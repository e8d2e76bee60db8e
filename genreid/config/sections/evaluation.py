"""``eval``: protocol and feature extraction (docs/data_and_evaluation.md#evaluation-protocol)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genreid.config.base import StrictModel, registered_name
from genreid.registry import report_order


class RerankConfig(StrictModel):
    """k-reciprocal re-ranking (Zhong et al. 2017); the papers report without it."""

    enabled: bool = Field(False, description="re-rank the test distances")
    k1: int = Field(20, ge=1, description="k-reciprocal neighbourhood size")
    k2: int = Field(6, ge=1, description="neighbours averaged in the query expansion (1: none)")
    lambda_value: float = Field(0.3, ge=0.0, le=1.0, description="weight of the original distance")


class EvalConfig(StrictModel):
    methods: list[registered_name(report_order, "an evaluated encoder")] = Field(
        default_factory=lambda: ["untrained", "baseline", "gcl", "gcl_plus"], min_length=1,
        description="encoders evaluated; untrained = a fresh encoder built from `model` with `seed`; "
                    "a stage-3 method is evaluated when it is also in train.methods; direct = the "
                    "source-trained encoder on the target (UDA only: needs warmup.source_dataset)")
    protocol: Literal["rank", "sklearn", "interpolated"] = Field(
        "rank", description="AP definition: rank (torchreid/FastReID), sklearn (open-reid lineage), "
                            "interpolated (official Market-1501 code)")
    metric: Literal["euclidean", "cosine"] = Field(
        "euclidean", description="euclidean: squared distance of L2-normalised features (2 - 2cos); cosine: 1 - cos")
    max_rank: int = Field(50, ge=1, description="CMC length (reduced to the gallery size)")
    camera_filter: bool = Field(True, description="remove same-pid same-camera gallery items; off for camera-less data")
    flip: bool = Field(False, description="average the embedding of each image and its mirror (the papers: off)")
    batch_size: int = Field(128, ge=1, description="feature extraction batch")
    rerank: RerankConfig = Field(default_factory=RerankConfig)
    ranked_list_queries: int = Field(3, ge=0, description="best and worst queries drawn as pictures")

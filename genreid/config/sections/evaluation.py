"""``eval``: protocol and feature extraction (DATA_AND_EVAL.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genreid.config.base import StrictModel


class RerankConfig(StrictModel):
    enabled: bool = False
    k1: int = Field(20, ge=1)
    k2: int = Field(6, ge=1)
    lambda_value: float = Field(0.3, ge=0.0, le=1.0)


class EvalConfig(StrictModel):
    methods: list[Literal["untrained", "baseline", "gcl", "gcl_plus"]] = Field(
        default_factory=lambda: ["untrained", "baseline", "gcl", "gcl_plus"], min_length=1)
    protocol: Literal["rank", "sklearn", "interpolated"] = "rank"
    metric: Literal["euclidean", "cosine"] = "euclidean"
    max_rank: int = Field(50, ge=1)
    camera_filter: bool = True
    flip: bool = False
    batch_size: int = Field(128, ge=1)
    rerank: RerankConfig = Field(default_factory=RerankConfig)
    ranked_list_queries: int = Field(3, ge=0, description="best and worst queries drawn as pictures")

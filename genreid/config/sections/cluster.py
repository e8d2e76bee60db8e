"""``cluster``: pseudo-labels by DBSCAN on the k-reciprocal Jaccard distance.

The method: docs/method.md#clustering-and-pseudo-labels.

One section type for every clustering in the pipeline: ``warmup.cluster`` (Cluster-Contrast: fixed
eps 0.6), ``train.gcl.cluster`` (GCL: the rho rule) and ``train.gcl_plus.cluster`` (GCL+: fixed eps
0.55). The eps rule is explicit: ``fixed`` uses ``eps``, ``rho`` the mean of the smallest ``rho``
fraction of pairwise distances.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genreid.config.base import StrictModel


class ClusterConfig(StrictModel):
    eps_rule: Literal["fixed", "rho"] = Field("fixed", description="fixed = eps; rho = GCL's rule (uses rho)")
    eps: float = Field(0.6, gt=0.0, lt=1.0, description="DBSCAN eps when eps_rule is fixed")
    rho: float = Field(0.002, gt=0.0, lt=1.0, description="fraction of smallest distances when eps_rule is rho "
                                                          "(authors: 0.002 Market/Duke, 0.0012 MSMT17)")
    k1: int = Field(30, ge=1, description="k-reciprocal neighbourhood size of the Jaccard distance")
    k2: int = Field(6, ge=1, description="query-expansion neighbours of the Jaccard distance")
    min_samples: int = Field(4, ge=1, description="DBSCAN min_samples; unclustered images are outliers that epoch")
    camera_norm: bool = Field(False, description="not in the papers: centre features per camera before the Jaccard "
                                                 "distance (helps encoders trained from scratch)")

    def eps_and_rho(self) -> tuple[float | None, float | None]:
        """(eps, None) for the fixed rule, (None, rho) for the rho rule: the clustering call's arguments."""
        return (self.eps, None) if self.eps_rule == "fixed" else (None, self.rho)

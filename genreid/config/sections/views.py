"""``true_views``: SynthReID's ground-truth novel views (the person turned by each mesh angle)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genreid.config.base import StrictModel


class TrueViewsConfig(StrictModel):
    splits: list[Literal["train", "val"]] = Field(
        default_factory=lambda: ["val"], min_length=1,
        description="splits whose true views are rendered at every mesh.angles (SynthReID only; real datasets "
                    "have none): val feeds the view-fidelity metrics; train (about 5 x val's images) is what "
                    "the oracle_views arm trains on")
    batch_size: int = Field(32, ge=1, description="images per renderer call (memory vs speed; the views do not "
                                                  "depend on it)")

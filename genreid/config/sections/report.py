"""``report``: result tables vs paper targets."""

from __future__ import annotations

from pydantic import Field

from genreid.config.base import StrictModel


class ReportConfig(StrictModel):
    targets: str = Field("genreid/report/targets.yaml", description="paper targets registry")
    tolerance: float = Field(1.0, ge=0.0, description="mAP/R1 points allowed below a checked target")
    paired_recipes: list[str] = Field(
        default_factory=list,
        description="recipes (file names without .yaml, as the seed archive records them) whose archived "
                    "settings groups the report pairs with the current settings by seed, method by method, "
                    "e.g. an ablation that changes one key; groups sharing fewer than 2 seeds are skipped")

"""``mesh``: SMPL estimation and structure renders (METHOD.md section 1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from genreid.config.base import StrictModel


class MeshConfig(StrictModel):
    estimator: Literal["oracle", "hmr"] = Field("hmr", description="oracle = SynthReID ground truth")
    angles: list[int] = Field(default_factory=lambda: [0, 45, 90, 135, 180, 225, 270, 315])
    body_model: str = Field("procedural", description="'procedural' or path to SMPL_NEUTRAL.pkl/.npz")
    hmr_checkpoint: str = "data/models/hmr/model_checkpoint.pt"
    smpl_mean_params: str = "data/models/hmr/smpl_mean_params.npz"
    batch_size: int = Field(32, ge=1)
    splits: list[Literal["train", "val", "query", "gallery"]] = Field(default_factory=lambda: ["train", "val"])
    overlay_samples: int = Field(8, ge=0)

    @field_validator("angles")
    @classmethod
    def _angles(cls, v: list[int]) -> list[int]:
        if not v or v[0] != 0:
            raise ValueError("mesh.angles must start with 0 (the pixel-aligned render)")
        if any(a < 0 or a >= 360 for a in v) or len(set(v)) != len(v):
            raise ValueError(f"mesh.angles must be distinct degrees in [0, 360), got {v}")
        return v

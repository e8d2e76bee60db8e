"""``mesh``: SMPL estimation and structure renders (docs/method.md#pipeline)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from genreid.config.base import StrictModel

EstimatorName = Literal["oracle", "hmr", "landmarks", "standing"]


class MeshConfig(StrictModel):
    estimator: Literal["oracle", "hmr", "landmarks", "standing", "auto"] = Field(
        "hmr", description="hmr = SPIN-format regressor (paper); oracle = SynthReID ground truth; landmarks = "
                           "MediaPipe pose landmarks with the body model fitted to them (licence-free, the optional "
                           "extra 'landmarks'); standing = no estimation (every image gets the standing fallback "
                           "body); auto = oracle where ground truth exists (synthetic), else hmr when "
                           "mesh.hmr_checkpoint exists, else landmarks")
    also_measure: list[EstimatorName] = Field(
        default_factory=list, description="estimators whose accuracy against SynthReID's ground truth is measured "
                                          "besides the one used (results/<ds>/meshes/accuracy.json); they render "
                                          "nothing for training")
    landmarks_input_size: int = Field(512, ge=128, le=2048, description="landmarks: side of the square each crop "
                                                                          "is placed on for MediaPipe")
    landmarks_fill: float = Field(0.6, gt=0.2, le=1.0, description="landmarks: share of that square the crop's "
                                                                    "long side spans (0.6: 128x64 crops upscaled "
                                                                    "2.4 times)")
    fit_iterations: int = Field(150, ge=1, description="landmarks: Adam iterations of the body fit")
    angles: list[int] = Field(default_factory=lambda: [0, 45, 90, 135, 180, 225, 270, 315],
                              description="yaw angles rendered; 0 first (the pixel-aligned render)")
    body_model: str = Field("procedural", description="'procedural' or path to SMPL_NEUTRAL.pkl/.npz (the papers' "
                                                      "SMPL; real datasets need it unless allow_procedural_body)")
    allow_procedural_body: bool = Field(False, description=(
        "real datasets with the procedural stand-in body instead of SMPL: a deviation from the papers, "
        "marked in provenance and the report; SynthReID is rendered with it and needs no permission"))
    hmr_checkpoint: str = Field("data/models/hmr/model_checkpoint.pt", description="SPIN's model_checkpoint.pt")
    smpl_mean_params: str = Field("data/models/hmr/smpl_mean_params.npz", description="SPIN's mean parameters")
    hmr_rescale: float = Field(1.2, gt=0.5, le=3.0, description="crop side / image height (SPIN's 1.2 margin)")
    batch_size: int = Field(32, ge=1, description="images per chunk: one estimator call, one resume unit")
    splits: list[Literal["train", "val", "query", "gallery"]] = Field(default_factory=lambda: ["train", "val"])
    overlay_samples: int = Field(8, ge=0, description="rows of results/<ds>/meshes/overlay.png")
    export_dir: str | None = Field(None, description="also write the authors' layout (render/, render_45/, ...) "
                                                     "here; null = no export")

    @field_validator("angles")
    @classmethod
    def _angles(cls, v: list[int]) -> list[int]:
        if not v or v[0] != 0:
            raise ValueError("mesh.angles must start with 0 (the pixel-aligned render)")
        if any(a < 0 or a >= 360 for a in v) or len(set(v)) != len(v):
            raise ValueError(f"mesh.angles must be distinct degrees in [0, 360), got {v}")
        return v

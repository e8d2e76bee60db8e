"""``data``: where each dataset comes from, image size, validation split, verification."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from genreid.config.base import StrictModel


class ArchiveSource(StrictModel):
    archive: str = Field(..., description="path of the dataset archive (zip/tar) or unpacked folder")
    url: str | None = Field(None, description="download URL, tried only when the archive is absent")
    sha256: str | None = Field(None, description="expected archive checksum; null skips the check")


class Market1501Source(ArchiveSource):
    archive: str = "data/archives/Market-1501-v15.09.15.zip"


class DukeSource(ArchiveSource):
    archive: str = "data/archives/DukeMTMC-reID.zip"


class MSMT17Source(ArchiveSource):
    archive: str = "data/archives/MSMT17_V1.tar.gz"
    version: Literal["auto", "v1", "v2"] = "auto"


class SynthConfig(StrictModel):
    """SynthReID generator knobs (the embedded benchmark)."""

    seed: int = Field(0, ge=0)
    num_train_ids: int = Field(64, ge=2)
    num_test_ids: int = Field(64, ge=2)
    num_cameras: int = Field(6, ge=2, le=16)
    cameras_per_id: int = Field(4, ge=2, description="cameras each identity appears in")
    images_per_camera: int = Field(3, ge=1, description="images of an identity in one camera")
    num_distractors: int = Field(20, ge=0, description="gallery images of pid 0 (Market's 0000)")
    height: int = Field(128, ge=32, description="stored image height; width is height/2")
    body_model: str = Field("procedural", description="'procedural' or a path to an SMPL .pkl/.npz")
    occlusion_prob: float = Field(0.2, ge=0.0, le=1.0)
    blur_max: float = Field(1.0, ge=0.0, le=5.0, description="max Gaussian blur sigma per camera")
    colour_cast: float = Field(0.15, ge=0.0, le=1.0, description="strength of per-camera illumination cast")
    palette_size: int = Field(8, ge=2, description="colours shared by all identities per garment")


class DataConfig(StrictModel):
    root: str = Field("data", description="working folder for archives, prepared splits and renders")
    height: int = Field(256, ge=16, description="network input height (paper: 256)")
    width: int = Field(128, ge=8, description="network input width (paper: 128)")
    val_fraction: float = Field(0.05, ge=0.0, lt=0.5, description="training ids carved off for model selection")
    val_seed: int = Field(0, ge=0)
    verify: Literal["header", "full"] = "header"
    max_bad_images: int = Field(0, ge=0, description="unreadable images tolerated (skipped and counted)")
    expected_counts: Literal["canonical", "off"] = Field(
        "canonical", description="check canonical image/id counts after preparation")
    market1501: Market1501Source = Field(default_factory=Market1501Source)
    dukemtmc: DukeSource = Field(default_factory=DukeSource)
    msmt17: MSMT17Source = Field(default_factory=MSMT17Source)
    synthetic: SynthConfig = Field(default_factory=SynthConfig)

    @model_validator(mode="after")
    def _aspect(self) -> "DataConfig":
        if self.height != 2 * self.width:
            raise ValueError(f"data.height must be 2 x data.width (aspect 2:1), got {self.height}x{self.width}")
        return self

"""``data``: where each dataset comes from, image size, validation split, verification."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from genreid.config.base import StrictModel


class ArchiveSource(StrictModel):
    archive: str = Field(..., description="the dataset archive (zip/tar, DVC-tracked input) or an unpacked folder")
    url: str | None = Field(None, description="download URL, tried only when the archive is absent")
    sha256: str | None = Field(None, description="expected archive checksum; null skips the check")


class Market1501Source(ArchiveSource):
    archive: str = Field("sources/market1501/Market-1501-v15.09.15.zip", description="archive or unpacked folder")


class DukeSource(ArchiveSource):
    archive: str = Field("sources/dukemtmc/DukeMTMC-reID.zip",
                         description="your copy (withdrawn by its owners: no download); archive or folder")


class MSMT17Source(ArchiveSource):
    archive: str = Field("sources/msmt17/MSMT17_V1.tar.gz",
                         description="your copy (by request from its authors: no download); archive or folder")
    version: Literal["auto", "v1", "v2"] = Field(
        "auto", description="folder layout: v1 train/ test/, v2 mask_train_v2/ mask_test_v2/; auto detects")


class SynthConfig(StrictModel):
    """SynthReID generator knobs (the embedded benchmark): what ``genreid.synth.generate_synthreid``
    takes as its settings. Defaults: the default
    pipeline's dataset (1556 images, under 2 minutes on 2 cores); ``results/synthetic/dataset/difficulty.md``
    measures how hard it is."""

    seed: int = Field(0, ge=0, description="dataset seed: the same seed gives byte-identical images and manifests")
    num_train_ids: int = Field(64, ge=2, description="identities in bounding_box_train")
    num_test_ids: int = Field(64, ge=2, description="identities in query/bounding_box_test (disjoint from train)")
    num_cameras: int = Field(6, ge=2, le=16, description="cameras, each with its own light, colour cast, blur, scenes")
    cameras_per_id: int = Field(4, ge=2, description="cameras each identity appears in")
    images_per_camera: int = Field(3, ge=1, description="images of an identity in one camera (query takes one)")
    num_distractors: int = Field(20, ge=0, description="gallery images of pid 0 (Market's 0000)")
    height: int = Field(128, ge=32, description="stored image height; width is height/2")
    body_model: str = Field("procedural", description="'procedural' or a path to an SMPL .pkl/.npz")
    occlusion_prob: float = Field(0.2, ge=0.0, le=1.0, description="chance that an image gets an occluder")
    blur_max: float = Field(1.0, ge=0.0, le=5.0, description="max Gaussian blur sigma per camera (pixels)")
    colour_cast: float = Field(0.1, ge=0.0, le=1.0,
                               description="per-camera illumination colour gain: largest channel change")
    palette_size: int = Field(8, ge=2, le=16, description="colours shared by all identities per garment")

    def record(self) -> dict[str, Any]:
        """The settings as written into summary.json and the generator's resume stamp. Domain a's record
        carries no ``domain`` key, so the default dataset's record (and its committed hash) does not
        depend on the second domain's existence."""
        params = self.model_dump()
        if params.get("domain", "a") == "a":
            params.pop("domain", None)
        return params


class SynthDomainBConfig(SynthConfig):
    """SynthReID's second domain (UDA demo, ``synthetic_b``): other people (seed 1) in a visibly
    different place: darker, bluish, noisier, blurrier cameras and darker scenes (``domain: b``,
    genreid.synth.scene.DOMAIN_B). ``data.synthetic`` (domain a) is unchanged by it."""

    seed: int = Field(1, ge=0, description="dataset seed (1: other identities than data.synthetic's 0)")
    domain: Literal["a", "b"] = Field("b", description="look of the cameras: a = data.synthetic's, b = darker, "
                                                       "bluish cast, stronger noise and blur, darker scenes")


class DataConfig(StrictModel):
    root: str = Field("data", description="working folder for archives, prepared splits and renders")
    height: int = Field(256, ge=16, description="network input height (paper: 256)")
    width: int = Field(128, ge=8, description="network input width (paper: 128)")
    val_fraction: float = Field(0.05, ge=0.0, lt=0.5, description="training ids (seen by >= 2 cameras) carved "
                                "off for model selection; val keeps raw pids, train is relabelled 0..N-1")
    val_seed: int = Field(0, ge=0, description="seed of the validation-id draw")
    verify: Literal["header", "full"] = Field(
        "header", description="image check at prepare: header parse (fast) or full decode (catches truncation)")
    max_bad_images: int = Field(0, ge=0, description="unreadable images tolerated (skipped and counted)")
    expected_counts: Literal["canonical", "off"] = Field(
        "canonical", description="check the published image/id/camera counts per split after preparation "
        "(synthetic: its generator's own counts); off skips the check")
    market1501: Market1501Source = Field(default_factory=Market1501Source)
    dukemtmc: DukeSource = Field(default_factory=DukeSource)
    msmt17: MSMT17Source = Field(default_factory=MSMT17Source)
    synthetic: SynthConfig = Field(default_factory=SynthConfig)
    synthetic_b: SynthDomainBConfig = Field(default_factory=SynthDomainBConfig,
                                            description="SynthReID domain b: the UDA demo's target")

    @model_validator(mode="after")
    def _aspect(self) -> "DataConfig":
        if self.height != 2 * self.width:
            raise ValueError(f"data.height must be 2 x data.width (aspect 2:1), got {self.height}x{self.width}")
        return self


def synth_settings(name: str, fields: dict[str, Any]) -> SynthConfig:
    """The validated settings of the SynthReID dataset ``name`` (``synthetic`` or ``synthetic_b``) from its
    fields in params.yaml, as :func:`genreid.synth.generate_synthreid` takes them."""
    section = {"synthetic": SynthConfig, "synthetic_b": SynthDomainBConfig}.get(name)
    if section is None:
        raise ValueError(f"{name!r} is not a SynthReID dataset (synthetic, synthetic_b)")
    return section(**fields)

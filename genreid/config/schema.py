"""The whole params tree. Each section lives in its own module; this file assembles them.

Defaults are the paper's real-dataset settings (METHOD.md); recipes under ``params/``
override only what differs, and ``params.yaml`` is the fully resolved tree DVC tracks.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from genreid.config.base import StrictModel
from genreid.config.sections.data import DataConfig
from genreid.config.sections.evaluation import EvalConfig
from genreid.config.sections.gan import PretrainConfig, TrainConfig
from genreid.config.sections.mesh import MeshConfig
from genreid.config.sections.model import ModelConfig
from genreid.config.sections.report import ReportConfig
from genreid.config.sections.warmup import WarmupConfig

DatasetName = Literal["market1501", "dukemtmc", "msmt17", "synthetic"]


class RuntimeConfig(StrictModel):
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when available, else CPU")
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes; 0 = load in the main process")
    num_threads: int = Field(0, ge=0, le=512, description="torch CPU threads; 0 = torch default")
    deterministic: bool = Field(True, description="request deterministic torch algorithms (cudnn.benchmark stays off)")
    amp: Literal["off", "bf16", "fp16"] = Field("off", description="mixed precision on CUDA only")
    channels_last: bool = Field(False, description="channels-last memory format on CUDA (not read by any stage yet)")


class GenreidConfig(StrictModel):
    seed: int = Field(1, ge=0, description="the authors' seed is 1")
    datasets: list[DatasetName] = Field(default_factory=lambda: ["synthetic"], min_length=1,
                                        description="datasets the pipeline runs on (dvc.yaml foreach)")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("datasets")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"datasets must not repeat a name, got {v}")
        return v

    @model_validator(mode="after")
    def _oracle_body_matches_synthesis(self) -> GenreidConfig:
        """Oracle meshes re-pose SynthReID's ground-truth SMPL parameters: with another body model the
        renders would no longer line up with the people in the images."""
        if ("synthetic" in self.datasets and self.mesh.estimator in ("oracle", "auto")
                and self.mesh.body_model != self.data.synthetic.body_model):
            raise ValueError(
                f"mesh.body_model ({self.mesh.body_model!r}) must equal data.synthetic.body_model "
                f"({self.data.synthetic.body_model!r}) when mesh.estimator is {self.mesh.estimator!r}: oracle "
                "meshes re-pose the ground truth SynthReID was rendered with; set both to the same value")
        return self

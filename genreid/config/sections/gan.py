"""``pretrain`` (stage 2) and ``train`` (stage 3): METHOD.md sections 3, 4, 6."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genreid.config.base import StrictModel

Method = Literal["gcl", "gcl_plus"]


class LossWeights(StrictModel):
    rec: float = Field(5.0, ge=0.0)
    cyc: float = Field(5.0, ge=0.0)
    code: float = Field(5.0, ge=0.0)
    cyc_code: float = Field(5.0, ge=0.0)
    adv: float = Field(1.0, ge=0.0)
    r1: float = Field(0.01, ge=0.0)


class Optim(StrictModel):
    lr_g: float = Field(1e-4, gt=0.0)
    lr_d: float = Field(1e-4, gt=0.0)
    lr_id: float = Field(3.5e-4, gt=0.0)
    weight_decay: float = Field(5e-4, ge=0.0)


class PretrainConfig(StrictModel):
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(16, ge=2)
    angles: list[int] = Field(default_factory=lambda: [45, 90, 135, 180, 225, 270, 315],
                              description="novel-view angles drawn; authors' code never draws 315")
    weights: LossWeights = Field(default_factory=LossWeights)
    optim: Optim = Field(default_factory=Optim)
    checkpoint_every_iters: int = Field(500, ge=1)
    sheet_every: int = Field(1, ge=1, description="epochs between generator sheets")


class GclPlusConfig(StrictModel):
    mixup: Literal["d_mixup", "mixup", "f_mixup", "none"] = "d_mixup"
    beta_alpha: float = Field(0.6, gt=0.0)
    proto_temperature: float = Field(0.05, gt=0.0)
    proto_normalise: bool = Field(True, description="authors' code: raw f, no temperature (False)")
    id_w: float = Field(1.0, ge=0.0)


class TrainConfig(StrictModel):
    methods: list[Method] = Field(default_factory=lambda: ["gcl", "gcl_plus"], min_length=1)
    epochs: int = Field(20, ge=1)
    iters_per_epoch: int | None = Field(None, ge=1, description="null = one pass over clustered images")
    batch_size: int = Field(16, ge=2)
    step_epoch: int = Field(10, ge=1)
    angles: list[int] = Field(default_factory=lambda: [45, 90, 135, 180, 225, 270, 315])
    weights: LossWeights = Field(default_factory=LossWeights)
    optim: Optim = Field(default_factory=Optim)
    stage3_lr_g: float = Field(1e-4, gt=0.0, description="authors' resume silently used 1e-5 or 1e-4")
    memory_temperature: float = Field(0.04, gt=0.0)
    memory_momentum: float = Field(0.2, ge=0.0, le=1.0, description="M <- norm(m*M + (1-m)*f)")
    num_negatives: int = Field(8192, ge=1)
    term3_negatives: Literal["f", "f_nv"] = Field("f", description="authors' code quirk: f_nv")
    vi_weight: float = Field(1.0, ge=0.0)
    k1: int = Field(30, ge=1)
    k2: int = Field(6, ge=1)
    min_samples: int = Field(4, ge=1)
    gcl_rho: float = Field(0.002, gt=0.0, lt=1.0, description="GCL eps = mean of smallest rho fraction")
    gcl_plus_eps: float = Field(0.55, gt=0.0, lt=1.0)
    gcl_plus: GclPlusConfig = Field(default_factory=GclPlusConfig)
    checkpoint_every_iters: int = Field(500, ge=1)
    eval_every: int = Field(1, ge=1)

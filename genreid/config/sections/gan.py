"""``pretrain`` (stage 2) and ``train`` (stage 3): docs/method.md.

Defaults are the paper / authors'-code values; every quirk of the authors' code is a named key
whose description says what the code did (params/ablations/authors_code_quirks.yaml sets them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from genreid.config.base import StrictModel, registered_name
from genreid.config.sections.cluster import ClusterConfig
from genreid.registry import method_names

Method = registered_name(method_names, "a stage-3 method")
ALL_ANGLES = [45, 90, 135, 180, 225, 270, 315]


def _check_angles(v: list[int]) -> list[int]:
    if not v or any(a <= 0 or a >= 360 for a in v) or len(set(v)) != len(v):
        raise ValueError(f"angles must be distinct novel-view degrees in (0, 360), got {v}")
    return v


class LossWeights(StrictModel):
    rec: float = Field(5.0, ge=0.0, description="L1(x_rec, x)")
    cyc: float = Field(5.0, ge=0.0, description="L1(x_cyc, x)")
    code: float = Field(5.0, ge=0.0, description="L1(a_rec, sg(a))")
    cyc_code: float = Field(5.0, ge=0.0, description="L1(a_cyc, sg(a))")
    adv: float = Field(1.0, ge=0.0, description="LSGAN weight of each fake set, G and D sides")
    r1: float = Field(0.01, ge=0.0, description="R1 penalty on real images in the D loss")


class Optim(StrictModel):
    """Stage-2 optimisers: Adam for E_str+G and for D, constant LR (authors' code)."""

    lr_g: float = Field(1e-4, gt=0.0)
    lr_d: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    beta1: float = Field(0.0, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)


class TrainOptim(StrictModel):
    """Stage-3 optimisers: E_id SGD (nesterov); E_str+G and D Adam at ``train.stage3_lr_g``."""

    lr_id: float = Field(3.5e-4, gt=0.0, description="E_id SGD LR")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="E_id SGD momentum (nesterov)")
    weight_decay: float = Field(5e-4, ge=0.0, description="all three optimisers")
    beta1: float = Field(0.0, ge=0.0, lt=1.0, description="Adam of E_str+G and D")
    beta2: float = Field(0.999, ge=0.0, lt=1.0)


class PretrainConfig(StrictModel):
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(16, ge=2)
    iters_per_epoch: int | None = Field(None, ge=1, description=(
        "cap on the iterations of an epoch, not a count: an epoch runs min(this, one pass over the training "
        "images); asking for more than one pass gives is warned about; null = one pass"))
    angles: list[int] = Field(default_factory=lambda: list(ALL_ANGLES),
                              description="novel-view angles drawn; authors' code never draws 315")
    weights: LossWeights = Field(default_factory=LossWeights)
    optim: Optim = Field(default_factory=Optim)
    recon_warmup_iters: int = Field(0, ge=0, description=(
        "not in the papers: the first N iterations train only rec*L1(G(E_str(m0), a), x) (no D, no E_id graph), "
        "a cheap warm start for short CPU schedules; 0 = the authors' schedule"))
    recon_warmup_lr: float | None = Field(None, gt=0.0, description=(
        "E_str+G LR during the reconstruction warm start (a plain regression tolerates more); null = optim.lr_g"))
    adain_scale_offset: float = Field(0.0, description=(
        "AdaIN scale = MLP output + offset; authors' code: raw (0); 1 starts AdaIN at identity (learns faster)"))
    code_norm: bool = Field(False, description=(
        "not in the papers: standardise E_id's appearance code per dimension with statistics of the training "
        "images fixed before stage 2 (kept in stage 3); authors' code: raw code (false)"))
    checkpoint_every_iters: int = Field(500, ge=1, description="authors' code: every 5000 (the tail is lost)")
    sheet_every: int = Field(1, ge=1, description="epochs between generator sheets logged with dvclive")
    sheet_rows: int = Field(4, ge=1, description="persons on the generator sheet")

    @field_validator("angles")
    @classmethod
    def _angles(cls, v: list[int]) -> list[int]:
        return _check_angles(v)


class GclCluster(ClusterConfig):
    """GCL's clustering: the rho rule by default, also when a recipe sets only some keys."""

    eps_rule: Literal["fixed", "rho"] = Field("rho", description="GCL: rho (0.002 Market/Duke, 0.0012 MSMT17)")


class GclPlusCluster(ClusterConfig):
    """GCL+'s clustering: a fixed eps of 0.55 by default."""

    eps: float = Field(0.55, gt=0.0, lt=1.0, description="GCL+: fixed DBSCAN eps 0.55")


class GclConfig(StrictModel):
    """GCL (CVPR 2021): view-invariant memory loss; pseudo-labels with the rho rule."""

    cluster: GclCluster = Field(default_factory=GclCluster, description="GCL: eps by the rho rule")


class GclPlusConfig(StrictModel):
    """GCL+ (TPAMI 2023): adds identity mixing and prototype losses; fixed eps 0.55."""

    cluster: GclPlusCluster = Field(default_factory=GclPlusCluster, description="GCL+: fixed eps 0.55")
    mixup: Literal["d_mixup", "mixup", "f_mixup", "none"] = Field(
        "d_mixup", description="identity mixing: codes through G (paper), pixels, features, or off")
    beta_alpha: float = Field(0.6, gt=0.0, description="lambda ~ Beta(a, a), folded to >= 0.5")
    proto_temperature: float = Field(0.05, gt=0.0, description="(open) authors' code: none (1.0)")
    proto_normalise: bool = Field(True, description="authors' code: raw f and prototypes (false)")
    id_w: float = Field(1.0, ge=0.0, description="prototype-loss weight (never defined in the authors' code)")
    mix_adv: bool = Field(True, description="adversarial term on x_mix, G and D sides (D-Mixup only)")


class ControlAugConfig(StrictModel):
    """control_aug (not in the papers): GCL's positive view G(s_t, a) replaced by traditional ReID
    augmentation of the same image, applied in this order: colour jitter (brightness, contrast,
    saturation, fixed order), horizontal flip, pad-and-random-crop, random erasing (Zhong et al. 2020).
    Clustering is GCL's (``train.gcl.cluster``); no generator is loaded."""

    brightness: float = Field(0.2, ge=0.0, lt=1.0, description="pixels x U(1-b, 1+b) per image")
    contrast: float = Field(0.2, ge=0.0, lt=1.0, description="blend with the image's mean grey, factor U(1-c, 1+c)")
    saturation: float = Field(0.2, ge=0.0, lt=1.0, description="blend with the grey image, factor U(1-s, 1+s)")
    flip_p: float = Field(0.5, ge=0.0, le=1.0, description="horizontal flip probability")
    pad_fraction: float = Field(0.1, ge=0.0, lt=1.0, description=(
        "zero (black) padding on every side, as a fraction of the width (13 px at 128), then a random crop "
        "back to the input size; 0 = no crop"))
    erase_p: float = Field(0.5, ge=0.0, le=1.0, description="random erasing probability (Zhong et al.: 0.5)")
    erase_min_area: float = Field(0.02, gt=0.0, lt=1.0, description="erased area fraction drawn in [sl, sh]: sl")
    erase_max_area: float = Field(0.4, gt=0.0, lt=1.0, description="sh (Zhong et al.: 0.02 and 0.4)")
    erase_min_aspect: float = Field(0.3, gt=0.0, le=1.0, description=(
        "aspect ratio drawn in [r1, 1/r1] (r1 0.3); the box is filled with the ImageNet mean (0 after "
        "normalisation); 100 attempts, none erased if no box fits"))

    @model_validator(mode="after")
    def _area(self) -> ControlAugConfig:
        if self.erase_min_area > self.erase_max_area:
            raise ValueError(f"erase_min_area {self.erase_min_area} exceeds erase_max_area {self.erase_max_area}")
        return self


class TrainConfig(StrictModel):
    methods: list[Method] = Field(default_factory=lambda: ["gcl", "gcl_plus"], min_length=1)
    epochs: int = Field(20, ge=1)
    iters_per_epoch: int | None = Field(None, ge=1, description=(
        "cap on the iterations of an epoch, not a count: an epoch runs min(this, one pass over the clustered "
        "images), which changes with clustering; asking for more than one pass gives is warned about; "
        "null = one pass"))
    batch_size: int = Field(16, ge=2)
    step_epoch: int = Field(10, ge=1, description="LR x lr_gamma from this epoch on (E_id; G and D too unless "
                                                  "gd_lr_step is false)")
    lr_gamma: float = Field(0.1, gt=0.0, le=1.0)
    angles: list[int] = Field(default_factory=lambda: list(ALL_ANGLES),
                              description="novel-view angles drawn; authors' code never draws 315")
    weights: LossWeights = Field(default_factory=LossWeights)
    stage3_lr_g: float = Field(1e-4, gt=0.0, description=(
        "stage-3 LR of E_str+G and D (Adam); the authors' resume silently gave 1e-5 or 1e-4 by PyTorch version "
        "(1e-5 under their PyTorch 1.2)"))
    gd_lr_step: bool = Field(True, description=(
        "E_str+G and D LR also x lr_gamma from step_epoch on; false keeps them at stage3_lr_g while E_id steps "
        "(the authors' PyTorch 1.2 run: their resumed G/D scheduler sat past its milestone, constant 1e-5)"))
    optim: TrainOptim = Field(default_factory=TrainOptim)
    pooling: Literal["warmup", "avg", "gem"] = Field("warmup", description=(
        "E_id's global pooling in stage 3: warmup = whatever the stage-1 encoder was trained with (GeM in "
        "Cluster-Contrast); avg = the authors' ft_net; gem"))
    gan_optimizer: Literal["resume", "fresh"] = Field("resume", description=(
        "E_str+G and D Adam states at the start of stage 3: resume = stage 2's (the authors' resume loads "
        "optimizer.pt); fresh = new optimisers"))
    detach_appearance_for_generator: bool = Field(False, description=(
        "ablation of GCL and GCL+ (not in the papers): E_id gets no gradient from the generator's losses "
        "(image, cycle and code reconstruction, adversarial): G reads E_id's appearance codes detached and E_id "
        "scores the generated images with its weights held fixed, so G's gradients are unchanged while E_id "
        "learns only from its contrastive losses (view-invariant, GCL+'s prototype) through its own forwards. "
        "It separates 'the generated views are weak' from 'the GAN's gradients hurt E_id'; false = the "
        "authors' joint step, where one backward moves E_id with every term"))
    memory_temperature: float = Field(0.04, gt=0.0)
    memory_momentum: float = Field(0.2, ge=0.0, le=1.0, description="M <- norm(m*M + (1-m)*f)")
    memory_init: Literal["encoder", "zeros"] = Field(
        "encoder", description="memory filled with E_id's features before epoch 0 (authors' code)")
    num_negatives: int = Field(8192, ge=1, description="K; drawn with replacement when a cluster leaves fewer")
    term3_negatives: Literal["f", "f_nv"] = Field("f", description="authors' code scores term 3's negatives with f_nv")
    positive_includes_self: bool = Field(False, description="authors' code may draw the anchor as its own positive")
    vi_weight: float = Field(1.0, ge=0.0, description="view-invariant memory loss weight")
    gcl: GclConfig = Field(default_factory=GclConfig)
    gcl_plus: GclPlusConfig = Field(default_factory=GclPlusConfig)
    control_aug: ControlAugConfig = Field(default_factory=ControlAugConfig, description=(
        "control arm: traditional augmentation as the positive view (GCL's clustering, no generator)"))
    checkpoint_every_iters: int = Field(500, ge=1, description="iterations between checkpoints (and every epoch end)")
    eval_every: int = Field(1, ge=1, description="validation (model selection) every N epochs; last always")
    selection: Literal["val_map", "last"] = Field("val_map", description="encoder kept: best val mAP or last")
    extract_batch_size: int = Field(128, ge=1, description="batch size of feature extraction for validation "
                                                           "(kept apart from eval.batch_size so eval never retrains)")

    @field_validator("angles")
    @classmethod
    def _angles(cls, v: list[int]) -> list[int]:
        return _check_angles(v)

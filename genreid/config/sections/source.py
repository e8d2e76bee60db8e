"""``source``: supervised pre-training on the labelled source dataset (UDA).

The strong-baseline recipe of the UDA literature: Luo et al. 2019, "Bag of Tricks and a Strong
Baseline for Deep Person Re-identification" (BoT) and Ge et al. 2020, "Mutual Mean-Teaching" (MMT),
whose source pre-training follows BoT. Each value says where it comes from; (open) marks a choice
neither paper fixes for this harness. Only runs when ``warmup.source_dataset`` is set.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from genreid.config.base import StrictModel


class SourceConfig(StrictModel):
    epochs: int = Field(80, ge=1, description="training epochs (MMT source pre-training: 80; BoT trains 120)")
    iters_per_epoch: int = Field(200, ge=1, description="PK batches per epoch (MMT's pre-training script: 200 "
                                                        "iterations per epoch)")
    batch_size: int = Field(64, ge=2, description="images per batch: P=16 identities x K=4 images (BoT, MMT)")
    num_instances: int = Field(4, ge=1, description="K, images per identity in a PK batch (BoT, MMT)")
    lr: float = Field(3.5e-4, gt=0.0, description="Adam base learning rate (BoT, MMT)")
    weight_decay: float = Field(5e-4, ge=0.0, description="Adam weight decay (BoT, MMT)")
    warmup_epochs: int = Field(10, ge=0, description="epochs of linear learning-rate warm-up (BoT, MMT); 0 = none")
    warmup_factor: float = Field(0.01, gt=0.0, le=1.0, description=(
        "LR factor at epoch 0 of the warm-up, rising linearly to 1 at warmup_epochs (MMT's WarmupMultiStepLR: "
        "0.01; BoT's text reads 0.1 of the base LR: (open))"))
    milestones: list[int] = Field(default_factory=lambda: [40, 70], description=(
        "epochs at which the LR is multiplied by lr_gamma (BoT, MMT: 40 and 70)"))
    lr_gamma: float = Field(0.1, gt=0.0, le=1.0, description="LR factor at each milestone (BoT, MMT)")
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="epsilon of the label-smoothed "
                                                                    "cross-entropy (BoT, MMT)")
    margin: float = Field(0.3, gt=0.0, description="batch-hard triplet margin on the pre-BN feature (BoT, MMT)")
    triplet_weight: float = Field(1.0, ge=0.0, description="weight of the triplet term next to the "
                                                           "cross-entropy (BoT: 1)")
    augment: bool = Field(True, description="flip + pad/crop + random erasing p 0.5 (BoT; the warm-up's "
                                            "Cluster-Contrast augmentation is the same set)")
    eval_every: int = Field(10, ge=1, description="source validation every N epochs (and after the last); "
                                                  "(open) interval")
    checkpoint_every_iters: int | None = Field(
        None, ge=1, description="iterations between checkpoints besides every epoch end; null = epoch ends")
    extract_batch_size: int = Field(256, ge=1, description="batch size of validation feature extraction")

    @model_validator(mode="after")
    def _pk(self) -> SourceConfig:
        if self.batch_size % self.num_instances:
            raise ValueError(f"source.batch_size {self.batch_size} must be a multiple of source.num_instances "
                             f"{self.num_instances} (P identities x K images)")
        if self.milestones != sorted(set(self.milestones)):
            raise ValueError(f"source.milestones must be strictly increasing, got {self.milestones}")
        return self

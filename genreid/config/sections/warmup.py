"""``warmup``: stage 1, Cluster-Contrast baseline (METHOD.md section 7).

Defaults are the published Cluster-Contrast recipe for real datasets (4 GPUs x 64 images);
``params/synthetic_cpu.yaml`` holds the small CPU profile.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genreid.config.base import StrictModel
from genreid.config.sections.cluster import ClusterConfig


class WarmupConfig(StrictModel):
    epochs: int = Field(50, ge=1, description="re-clustering rounds")
    iters_per_epoch: int = Field(200, ge=1, description="PK batches per epoch")
    batch_size: int = Field(256, ge=2, description="images per iteration over all processes")
    num_instances: int = Field(16, ge=1, description="images per pseudo-identity in a PK batch")
    lr: float = Field(3.5e-4, gt=0.0, description="Adam learning rate")
    weight_decay: float = Field(5e-4, ge=0.0, description="Adam weight decay")
    step_size: int = Field(20, ge=1, description="epochs between learning-rate drops")
    lr_gamma: float = Field(0.1, gt=0.0, le=1.0, description="learning-rate factor at each drop")
    temperature: float = Field(0.05, gt=0.0, description="cluster-memory softmax temperature")
    momentum: float = Field(0.1, ge=0.0, le=1.0, description="cluster memory update momentum")
    bn_group_size: int = Field(64, ge=0, description="images per BN statistics group; 0 = whole batch")
    micro_batch: int = Field(0, ge=0, description="images per forward/backward pass (gradient accumulation, "
                                                  "a multiple of bn_group_size): same update, less memory; 0 = "
                                                  "the whole batch at once")
    augment: bool = Field(False, description="Cluster-Contrast's flip + pad/crop + random erasing on training "
                                             "batches; off by default (GCL's only views are generated ones)")
    pooling: Literal["avg", "gem"] | None = Field(
        "gem", description="warm-up encoder pooling (Cluster-Contrast: GeM); null = model.pooling")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="Cluster-Contrast: fixed eps 0.6")
    eval_every: int = Field(5, ge=1, description="validation every N epochs (and after the last)")
    checkpoint_every_iters: int | None = Field(
        None, ge=1, description="iterations between checkpoints besides the one at every epoch end; null = epoch ends")
    extract_batch_size: int = Field(256, ge=1, description="batch size of feature extraction for clustering/validation")
    source_dataset: Literal["market1501", "dukemtmc", "msmt17"] | None = Field(
        None, description="UDA: labelled source dataset pre-trained on before the warm-up; null = fully "
                          "unsupervised (source pre-training is not implemented yet: a value stops the stage)")

"""``warmup``: stage 1, Cluster-Contrast baseline (docs/method.md#stage-1-baseline-cluster-contrast).

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
    iters_per_epoch: int = Field(200, ge=1, description=(
        "PK batches per epoch, exactly: further sampler passes are drawn when one pass gives fewer"))
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
    augment: bool = Field(True, description="Cluster-Contrast's flip + pad/crop + random erasing (p 0.5) on the "
                                            "warm-up's batches (stage 1 only; stages 2-3 use generated views)")
    sampler: Literal["multi_gallery", "pk_cameras"] = Field("multi_gallery", description=(
        "multi_gallery = Cluster-Contrast's RandomMultipleGallerySampler (per pass one group per identity: an "
        "anchor plus num_instances-1 from other cameras where possible); pk_cameras = genreid's earlier PK "
        "sampler (every image of an identity in round-robin camera groups)"))
    pooling: Literal["avg", "gem"] | None = Field(
        "gem", description="warm-up encoder pooling (Cluster-Contrast: GeM); null = model.pooling")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="Cluster-Contrast: fixed eps 0.6")
    eval_every: int = Field(5, ge=1, description="validation every N epochs (and after the last)")
    checkpoint_every_iters: int | None = Field(
        None, ge=1, description="iterations between checkpoints besides the one at every epoch end; null = epoch ends")
    extract_batch_size: int = Field(256, ge=1, description="batch size of feature extraction for clustering/validation")
    import_encoder: str | None = Field(
        None, description="path of an identity encoder converted from the authors' stage-1 file by `genreid "
                          "import-authors` (DIR/encoder.pt), used instead of training one; null = train stage 1 "
                          "(Cluster-Contrast)")
    source_dataset: Literal["market1501", "dukemtmc", "msmt17", "synthetic", "synthetic_b"] | None = Field(
        None, description="UDA: labelled source dataset; the `source` stage trains the encoder on it (params "
                          "`source`) and the warm-up starts from that encoder (strict load); null = fully "
                          "unsupervised. Not one of `datasets` (those are the targets)")

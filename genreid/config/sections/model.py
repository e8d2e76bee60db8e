"""``model``: identity encoder and generator architecture (docs/method.md#networks)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genreid.config.base import StrictModel


class GeneratorWidths(StrictModel):
    """Generator widths and architecture switches; the paper's / authors' values are the defaults."""

    str_channels: list[int] = Field(default_factory=lambda: [16, 32, 32, 64], min_length=4, max_length=4)
    str_out: int = Field(128, ge=4)
    dec_channels: list[int] = Field(default_factory=lambda: [64, 32], min_length=2, max_length=2)
    mlp_dim: int = Field(512, ge=8)
    dis_channels: list[int] = Field(default_factory=lambda: [32, 64], min_length=2, max_length=2)
    dis_scales: int = Field(3, ge=1, le=4)
    res_blocks: int = Field(4, ge=1)
    code_split: Literal["channels", "stripes"] = Field("channels", description=(
        "which part of E_id's appearance code feeds AdaIN MLP pair k: channels = the authors' channel-major "
        "flattening (channels kC/stripes..(k+1)C/stripes of all stripes); stripes = stripe k (the split by body "
        "region). Both give every MLP C inputs"))
    aspp_activation: Literal["none", "lrelu"] = Field("none", description=(
        "E_str's ASPP: none = the authors' (no activation after the 1x1 branch, the dilated convolutions and "
        "the fuse); lrelu = LeakyReLU after each, like the "
        "blocks before it"))
    decoder_norm: Literal["authors_ln", "group_norm"] = Field("authors_ln", description=(
        "layer norm after G's upsampling convs: authors_ln = the authors' (x - mean) / (unbiased std + 1e-5) "
        "per sample, gamma ~ U(0,1) at init; group_norm = GroupNorm(1, C) "
        "(the standard layer norm of a conv map)"))


class ModelConfig(StrictModel):
    backbone: Literal["resnet50", "resnet18"] = Field(
        "resnet50", description="identity-encoder trunk (paper: ResNet-50; resnet18 for small CPU profiles)")
    pretrained: Literal["imagenet", "none"] = Field(
        "imagenet", description="torchvision ImageNet weights (from the torch cache or downloaded) or random init")
    pooling: Literal["avg", "gem"] = Field("avg", description="global pooling before the embedding (GCL: avg)")
    embedding_dim: int = Field(512, ge=8, description="(open) paper says 512, once 2048")
    last_stride: Literal[1, 2] = Field(1, description="stride of layer4 (1 doubles the final map, as GCL)")
    stripes: int = Field(4, ge=1, description="appearance code = stripes x backbone channels")
    generator: GeneratorWidths = Field(default_factory=GeneratorWidths)

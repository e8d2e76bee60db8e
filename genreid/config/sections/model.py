"""``model``: identity encoder and generator architecture (METHOD.md section 2)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from genreid.config.base import StrictModel


class GeneratorWidths(StrictModel):
    """Channel widths; the paper's values are the defaults, small CPU profiles shrink them."""

    str_channels: list[int] = Field(default_factory=lambda: [16, 32, 32, 64], min_length=4, max_length=4)
    str_out: int = Field(128, ge=4)
    dec_channels: list[int] = Field(default_factory=lambda: [64, 32], min_length=2, max_length=2)
    mlp_dim: int = Field(512, ge=8)
    dis_channels: list[int] = Field(default_factory=lambda: [32, 64], min_length=2, max_length=2)
    dis_scales: int = Field(3, ge=1, le=4)
    res_blocks: int = Field(4, ge=1)


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

"""D: multi-scale LSGAN discriminator (docs/method.md#networks).

Each scale: conv1 3->32, conv3 32->32, conv3 s2 32->32, conv3 32->32, conv3 s2 32->64, 4 residual
blocks at 64, conv1 64->1; no normalisation, LeakyReLU 0.2, reflection padding, N(0, 0.02) init.
Scales see the image average-pooled (3x3, stride 2) once more each. ``forward`` returns one patch
score map per scale; the losses in :mod:`genreid.losses.gan` sum over them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genreid.models.gan_blocks import ConvBlock, ResBlock, init_normal


def _one_scale(c1: int, c2: int, res_blocks: int) -> nn.Sequential:
    return nn.Sequential(
        ConvBlock(3, c1, 1), ConvBlock(c1, c1, 3), ConvBlock(c1, c1, 3, stride=2),
        ConvBlock(c1, c1, 3), ConvBlock(c1, c2, 3, stride=2),
        *[ResBlock(c2) for _ in range(res_blocks)],
        nn.Conv2d(c2, 1, 1),
    )


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, channels: Sequence[int] = (32, 64), scales: int = 3, res_blocks: int = 4):
        super().__init__()
        c1, c2 = channels
        self.arch = {"channels": list(channels), "scales": scales, "res_blocks": res_blocks}
        self.nets = nn.ModuleList(_one_scale(c1, c2, res_blocks) for _ in range(scales))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        init_normal(self, 0.02)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, net in enumerate(self.nets):
            if i:
                x = self.downsample(x)
            outs.append(net(x))
        return outs

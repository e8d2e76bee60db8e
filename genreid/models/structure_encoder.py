"""E_str: the identity-free structure code of a 1-channel mesh render (docs/method.md#networks).

Paper widths: conv3 s2 1->16; conv3 16->32; conv3 32->32; conv3 s2 32->64; 4 residual blocks at
64; ASPP (1x1 branch 64->32 plus three 1x1 64->32 + dilated 3x3 branches at dilation 3/6/9,
concatenated to 128, fused 1x1 128->128). Instance norm, LeakyReLU 0.2, reflection padding.
A 256x128 render gives a 128x64x32 code. ``channels``/``out_channels``/``res_blocks`` shrink it
for the CPU profile; the ASPP branch width is half the last encoder width, as in the paper.

In the authors' ASPP the 1x1 branch, the dilated 3x3 convolutions and the fusing 1x1 are
conv -> instance norm with no activation; only the 1x1 reductions in front of the dilated
convolutions keep LeakyReLU (``aspp_activation='none'``, the default). ``'lrelu'`` puts a
LeakyReLU after every ASPP convolution, as genreid did before (``model.generator.aspp_activation``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genreid.models.gan_blocks import ConvBlock, ResBlock, init_kaiming


class ASPP(nn.Module):
    """Atrous spatial pyramid: context at several dilations without losing resolution."""

    def __init__(self, channels: int, out_channels: int, dilations: Sequence[int] = (3, 6, 9),
                 activation: str = "none"):
        super().__init__()
        if activation not in ("none", "lrelu"):
            raise ValueError(f"ASPP activation must be 'none' or 'lrelu', got {activation!r}")
        act = activation == "lrelu"
        half = max(1, channels // 2)
        self.branches = nn.ModuleList([ConvBlock(channels, half, 1, norm="in", activation=act)])
        for d in dilations:
            self.branches.append(nn.Sequential(ConvBlock(channels, half, 1, norm="in"),
                                               ConvBlock(half, half, 3, dilation=d, norm="in", activation=act)))
        self.fuse = ConvBlock(half * (1 + len(dilations)), out_channels, 1, norm="in", activation=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([b(x) for b in self.branches], dim=1))


class StructureEncoder(nn.Module):
    """Mesh render (B,1,H,W) in [-1,1] -> structure code (B, out_channels, H/4, W/4)."""

    def __init__(self, channels: Sequence[int] = (16, 32, 32, 64), out_channels: int = 128,
                 res_blocks: int = 4, dilations: Sequence[int] = (3, 6, 9), aspp_activation: str = "none"):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.arch = {"channels": list(channels), "out_channels": out_channels, "res_blocks": res_blocks,
                     "dilations": list(dilations), "aspp_activation": aspp_activation}
        self.stem = nn.Sequential(
            ConvBlock(1, c1, 3, stride=2, norm="in"),
            ConvBlock(c1, c2, 3, norm="in"),
            ConvBlock(c2, c3, 3, norm="in"),
            ConvBlock(c3, c4, 3, stride=2, norm="in"),
            *[ResBlock(c4, norm="in") for _ in range(res_blocks)],
        )
        self.aspp = ASPP(c4, out_channels, dilations, aspp_activation)
        self.out_channels = out_channels
        init_kaiming(self)

    def forward(self, mesh: torch.Tensor) -> torch.Tensor:
        return self.aspp(self.stem(mesh))

"""G: AdaIN decoder that paints an appearance code onto a structure code (docs/method.md#networks).

Paper: 4 residual blocks at 128 channels with 2 AdaIN layers each (8 AdaIN layers); 2x [nearest
upsample x2, conv5 (128->64, then 64->32), layer norm, LeakyReLU]; conv3 32->32 twice; conv1 32->3
with no tanh (the output lives in ImageNet-normalised space). The AdaIN scales and biases come
from ``stripes`` MLP pairs (2048->512->512->256 at paper scale): scale-MLP k and bias-MLP k produce
the AdaIN values of residual block k. The MLP input width is the identity encoder's channel count C.

Which part of the appearance code feeds MLP k (``code_split``; the code arrives stripe-major from
:mod:`genreid.models.id_encoder`, ``a[:, s*C + c]`` = channel c of stripe s):
- ``channels`` (the authors' code, default): the authors flatten the pooled (B, C, stripes, 1) map
  channel-major and cut it into ``stripes`` chunks of C, so MLP k sees channels
  [k*C/stripes, (k+1)*C/stripes) of *all* stripes, ordered channel*stripes + stripe (exactly their
  input vector, so their MLP weights load unchanged);
- ``stripes``: MLP k sees stripe k (all C channels), genreid's earlier reading.

In general the (layers x channels) AdaIN values, in layer order, are cut into ``stripes``
contiguous chunks and MLP pair k produces chunk k: at paper sizes chunk k is exactly the two
layers of block k; small profiles with fewer blocks than stripes still let every MLP drive a
part of the image. Scales are used raw, as in the authors' code (``scale_offset=0``);
``scale_offset=1`` centres them on identity.

``norm`` is the layer norm after each upsampling conv: ``authors_ln`` (default, the authors'
form: unbiased std, eps added to the std, gamma ~ U(0,1) at init; see
:class:`genreid.models.gan_blocks.AuthorsLayerNorm`) or ``group_norm`` (``GroupNorm(1, C)``).

``code_norm`` (not in the papers) standardises the appearance code per dimension with fixed
statistics (buffers set once by :meth:`Decoder.set_code_statistics`, before stage 2 trains). A
briefly trained encoder's pooled features share a large common offset (SynthReID seed 1: mean
0.94, per-dimension std across images 0.35), so the raw MLP input is nearly constant and G learns
to ignore the person's colours within a short schedule; standardised, held-out reconstruction L1
after 600 warm-start iterations fell from 0.49 to 0.36 (mean image: 0.53). Standardising and
D-Mixup act per dimension, so they do not depend on ``code_split``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genreid.errors import ConfigError
from genreid.models.gan_blocks import ConvBlock, SafePad, init_kaiming, instance_norm

CODE_SPLITS = ("channels", "stripes")
DECODER_NORMS = ("authors_ln", "group_norm")


@dataclass(frozen=True)
class CodeOptions:
    """How the appearance code becomes AdaIN values (module docstring): ``scale_offset`` added to the raw
    scales, ``code_norm`` standardising the code with fixed statistics, ``code_split`` choosing which part
    each MLP pair reads. The names are the keys of the decoder's saved ``arch``."""

    scale_offset: float = 0.0
    code_norm: bool = False
    code_split: str = "channels"


def mlp(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    """Linear-LeakyReLU-Linear-LeakyReLU-Linear: one AdaIN parameter head."""
    return nn.Sequential(nn.Linear(c_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                         nn.LeakyReLU(0.2), nn.Linear(hidden, c_out))


class AdaINConv(nn.Module):
    """pad -> conv3 -> instance norm -> per-sample scale/bias (set by the MLPs) -> optional LeakyReLU."""

    def __init__(self, channels: int, activation: bool):
        super().__init__()
        self.pad = SafePad(1)
        self.conv = nn.Conv2d(channels, channels, 3)
        self.activation = activation

    def forward(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        y = instance_norm(self.conv(self.pad(x)))  # constant planes: 0, no 316x gradient (gan_blocks)
        y = y * scale[:, :, None, None] + bias[:, :, None, None]
        return F.leaky_relu(y, 0.2) if self.activation else y


class AdaINResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = AdaINConv(channels, activation=True)
        self.conv2 = AdaINConv(channels, activation=False)

    def forward(self, x: torch.Tensor, params: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        (s1, b1), (s2, b2) = params
        return x + self.conv2(self.conv1(x, s1, b1), s2, b2)


class Decoder(nn.Module):
    """(structure (B,C,h,w), appearance (B, stripes*stripe_dim)) -> image (B,3,4h,4w)."""

    def __init__(self, stripe_dim: int = 2048, stripes: int = 4, in_channels: int = 128,
                 channels: Sequence[int] = (64, 32), res_blocks: int = 4, mlp_dim: int = 512,
                 code: CodeOptions = CodeOptions(), norm: str = "authors_ln"):
        super().__init__()
        scale_offset, code_norm, code_split = code.scale_offset, code.code_norm, code.code_split
        n_layers = 2 * res_blocks
        if stripes > n_layers * in_channels:
            raise ConfigError(f"model.stripes={stripes} exceeds the {n_layers * in_channels} AdaIN values",
                              "lower model.stripes or widen model.generator.str_out")
        if code_split not in CODE_SPLITS:
            raise ConfigError(f"model.generator.code_split must be one of {CODE_SPLITS}, got {code_split!r}")
        if code_split == "channels" and stripe_dim % stripes:
            raise ConfigError(f"model.generator.code_split='channels' needs the encoder's {stripe_dim} channels to "
                              f"divide by model.stripes={stripes}", "change model.stripes or use code_split: stripes")
        if norm not in DECODER_NORMS:
            raise ConfigError(f"model.generator.decoder_norm must be one of {DECODER_NORMS}, got {norm!r}")
        self.arch = {"stripe_dim": stripe_dim, "stripes": stripes, "in_channels": in_channels,
                     "channels": list(channels), "res_blocks": res_blocks, "mlp_dim": mlp_dim,
                     "scale_offset": scale_offset, "code_norm": code_norm, "code_split": code_split, "norm": norm}
        self.code_split = code_split
        self.stripes, self.stripe_dim, self.in_channels = stripes, stripe_dim, in_channels
        self.scale_offset = scale_offset
        self.n_layers = n_layers
        self.code_norm = code_norm
        if code_norm:  # identity until set_code_statistics; saved with the weights, fixed afterwards
            self.register_buffer("code_mean", torch.zeros(stripes * stripe_dim))
            self.register_buffer("code_std", torch.ones(stripes * stripe_dim))
        self.values_per_stripe = [len(c) for c in np.array_split(np.arange(n_layers * in_channels), stripes)]
        self.mlp_scale = nn.ModuleList(mlp(stripe_dim, mlp_dim, k) for k in self.values_per_stripe)
        self.mlp_bias = nn.ModuleList(mlp(stripe_dim, mlp_dim, k) for k in self.values_per_stripe)
        self.blocks = nn.ModuleList(AdaINResBlock(in_channels) for _ in range(res_blocks))
        c1, c2 = channels
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(in_channels, c1, 5, norm=norm),
            nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(c1, c2, 5, norm=norm),
            ConvBlock(c2, c2, 3), ConvBlock(c2, c2, 3),
            ConvBlock(c2, 3, 1, activation=False),
        )
        init_kaiming(self)

    @classmethod
    def from_arch(cls, arch: Mapping[str, Any]) -> Decoder:
        """The decoder a saved ``arch`` dict describes (the flat keys :attr:`arch` holds); an unknown key
        raises TypeError."""
        arch = dict(arch)
        code = CodeOptions(**{k: arch.pop(k) for k in ("scale_offset", "code_norm", "code_split") if k in arch})
        return cls(**arch, code=code)

    @torch.no_grad()
    def set_code_statistics(self, codes: torch.Tensor, eps: float = 1e-4) -> None:
        """Fix the standardisation from ``codes`` (N, stripes*stripe_dim), e.g. the training set's."""
        if not self.code_norm:
            raise ValueError("set_code_statistics needs a decoder built with code_norm=True")
        if codes.ndim != 2 or codes.shape[1] != self.code_mean.numel() or codes.shape[0] < 2:
            raise ValueError(f"expected (N>=2, {self.code_mean.numel()}) codes, got {tuple(codes.shape)}")
        codes = codes.detach().float()
        self.code_mean.copy_(codes.mean(0))
        self.code_std.copy_(codes.std(0) + eps)

    def mlp_inputs(self, appearance: torch.Tensor) -> torch.Tensor:
        """(B, stripes, C): row k is what MLP pair k reads (see ``code_split`` in the module docstring)."""
        b = appearance.shape[0]
        by_stripe = appearance.reshape(b, self.stripes, self.stripe_dim)  # [b, s, c] = a[b, s*C + c]
        if self.code_split == "stripes":
            return by_stripe
        # the authors' channel-major vector a'[b, c*stripes + s], cut into stripes chunks of C
        return by_stripe.transpose(1, 2).reshape(b, self.stripes, self.stripe_dim)

    def adain_params(self, appearance: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One (scale, bias) pair per AdaIN layer, in layer order."""
        b = appearance.shape[0]
        if appearance.shape[1] != self.stripes * self.stripe_dim:
            raise ValueError(f"appearance code has {appearance.shape[1]} values, the decoder expects "
                             f"{self.stripes} stripes x {self.stripe_dim}")
        if self.code_norm:
            appearance = (appearance - self.code_mean) / self.code_std
        parts = self.mlp_inputs(appearance)
        shape = (b, self.n_layers, self.in_channels)
        scales = torch.cat([m(parts[:, k]) for k, m in enumerate(self.mlp_scale)], 1).reshape(shape)
        biases = torch.cat([m(parts[:, k]) for k, m in enumerate(self.mlp_bias)], 1).reshape(shape)
        scales = scales + self.scale_offset
        return [(scales[:, j], biases[:, j]) for j in range(self.n_layers)]

    def forward(self, structure: torch.Tensor, appearance: torch.Tensor) -> torch.Tensor:
        params = self.adain_params(appearance)
        x = structure
        for i, block in enumerate(self.blocks):
            x = block(x, params[2 * i:2 * i + 2])
        return self.up(x)

"""Building blocks shared by the structure encoder, decoder and discriminator (docs/method.md#networks).

The authors' networks (DG-Net lineage) pad with reflection. On the small CPU profile a dilated
ASPP branch can ask for more padding than a 16x8 map has pixels, which reflection cannot do;
:class:`SafePad` then falls back to replicate padding for that call only (documented, never silent
at paper scale because 64x32 maps always fit the dilation-9 padding).

Constant planes: a blank mesh render (random HMR weights at 135/180 degrees) makes every
map of E_str, and then G's first AdaIN inputs, exactly constant. Instance norm maps a constant
plane to 0, but its backward multiplies the gradient by ``1/sqrt(eps)`` (about 316) at every such
layer; through about 20 of them (decoder AdaIN, ASPP, residual blocks, stem) it overflows fp32 to
inf and inf - inf gives NaN in E_str's stem while the loss stays finite. :func:`instance_norm`
treats an exactly constant plane (max == min) as carrying no signal: output 0, gradient 0.
Non-constant planes go through ``F.instance_norm`` unchanged, so their values and gradients are
bit-identical to before; only exactly constant planes changed (their forward was already 0 up to
rounding, their backward was the 316x amplification).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SafePad(nn.Module):
    """Reflection padding that falls back to replicate padding when the map is too small.

    Padding runs in the input's dtype with autocast off: CPU autocast lists reflection/replication
    padding as fp32 ops, so under ``runtime.amp: bf16`` every pad cast its bf16 map to fp32 and the
    next convolution cast it back (four copies per pad with the backward; 0.3 s of a 5.5 s stage-3
    step at paper widths on CPU). Padding only copies values, so the forward is exact either way;
    without autocast (``amp: off``) nothing changes at all."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad == 0:
            return x
        mode = "reflect" if min(x.shape[-2:]) > self.pad else "replicate"
        with torch.autocast(x.device.type, enabled=False):
            return F.pad(x, (self.pad,) * 4, mode=mode)


def constant_planes(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """True where ``x`` is exactly constant over ``dims`` (kept as size 1): exact, no tolerance."""
    with torch.no_grad():
        return x.amax(dim=dims, keepdim=True) == x.amin(dim=dims, keepdim=True)


def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``F.instance_norm`` (no affine), with 0 output and 0 gradient on exactly constant planes.

    The ``where`` passes values and gradients of other planes through untouched (bit-identical)."""
    y = F.instance_norm(x, eps=eps)
    return torch.where(constant_planes(x, (-2, -1)), torch.zeros((), dtype=y.dtype, device=y.device), y)


class InstanceNorm(nn.Module):
    """:func:`instance_norm` as a module; no parameters or buffers, like ``nn.InstanceNorm2d(affine=False)``
    (same state dict, so existing checkpoints load)."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return instance_norm(x, self.eps)


class AuthorsLayerNorm(nn.Module):
    """The decoder's layer norm as the authors' code (MUNIT/DG-Net lineage) computes it.

    Per sample over (C, H, W): ``(x - mean) / (std + eps)`` with the *unbiased* std and eps added to
    the std (not to the variance, as ``GroupNorm(1, C)`` does), then a per-channel affine whose
    ``gamma`` starts uniform in [0, 1) and ``beta`` at 0. Parameters are named ``gamma``/``beta``
    as the authors', so a GroupNorm checkpoint never loads into it silently.

    An exactly constant sample gives 0 output and 0 gradient: ``std``'s backward there is
    ``0 * (x - mean) / ((n-1) * 0)`` = NaN, so its input is detached for those samples (double
    ``where``); other samples' values and gradients are bit-identical to the plain formula.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.empty(channels).uniform_())
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.float().reshape(x.shape[0], -1)
        shape = (-1,) + (1,) * (x.dim() - 1)
        const = constant_planes(flat, (1,))
        mean, std = flat.mean(1).view(shape), torch.where(const, flat.detach(), flat).std(1).view(shape)
        y = torch.where(const.view(shape), 0.0, (x.float() - mean) / (std + self.eps)).to(x.dtype)
        affine = (1, -1) + (1,) * (x.dim() - 2)
        return y * self.gamma.view(affine) + self.beta.view(affine)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "in":
        return InstanceNorm()
    if kind in ("ln", "group_norm"):  # genreid's earlier layer norm: GroupNorm(1, C), eps inside the sqrt
        return nn.GroupNorm(1, channels)
    if kind == "authors_ln":
        return AuthorsLayerNorm(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class ConvBlock(nn.Module):
    """pad -> conv -> norm -> activation, the one unit every network here is made of.

    ``norm``: ``in`` (instance norm, no affine), ``authors_ln`` (:class:`AuthorsLayerNorm`),
    ``group_norm``/``ln`` (``GroupNorm(1, C)``) or ``none``.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1,
                 norm: str = "none", activation: bool = True):
        super().__init__()
        self.pad = SafePad(dilation * (kernel - 1) // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=0, dilation=dilation)
        self.norm = _norm(norm, c_out)
        self.act = nn.LeakyReLU(0.2, inplace=False) if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(self.pad(x))))


class ResBlock(nn.Module):
    """Two 3x3 conv blocks with an identity shortcut (second block without activation)."""

    def __init__(self, channels: int, norm: str = "none"):
        super().__init__()
        self.body = nn.Sequential(ConvBlock(channels, channels, 3, norm=norm),
                                  ConvBlock(channels, channels, 3, norm=norm, activation=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) weights and zero biases for every conv/linear layer (the authors' 'gaussian' init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_kaiming(module: nn.Module) -> None:
    """Kaiming-normal conv/linear weights (the authors' 'kaiming' init for E_str and G)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)

"""control_aug's positive view: traditional ReID augmentation of a normalised image batch.

Parameters are drawn on the CPU for the whole global batch (the global torch RNG unless a generator
is given, so a checkpoint's RNG state resumes the same draws) and each rank keeps its slice, as the
novel-view angles are: N processes augment exactly what one process would. The set and its
parameters are ``train.control_aug`` (genreid/config/sections/gan.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from genreid.config.sections.gan import ControlAugConfig
from genreid.data.loader import IMAGENET_MEAN, IMAGENET_STD
from genreid.engine import dist

ERASE_ATTEMPTS = 100  # Zhong et al.'s reference implementation
GREY = (0.299, 0.587, 0.114)


@dataclass
class AugDraw:
    """Per-image random parameters (all of length B)."""

    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    flip: torch.Tensor  # bool
    dy: torch.Tensor  # crop offsets into the padded image
    dx: torch.Tensor
    erase: torch.Tensor  # bool: a box was drawn that fits
    ey: torch.Tensor
    ex: torch.Tensor
    eh: torch.Tensor
    ew: torch.Tensor

    def shard(self, info: dist.DistInfo) -> AugDraw:
        """This rank's slice of a global batch's draws."""
        return AugDraw(**{f.name: torch.stack(dist.shard_batch(getattr(self, f.name), info))
                          for f in fields(self)})


def pad_pixels(cfg: ControlAugConfig, width: int) -> int:
    return int(round(cfg.pad_fraction * width))


def _factor(n: int, spread: float, g: torch.Generator | None) -> torch.Tensor:
    return 1.0 + spread * (2.0 * torch.rand(n, generator=g) - 1.0)


def draw_augmentation(n: int, height: int, width: int, cfg: ControlAugConfig,
                      generator: torch.Generator | None = None) -> AugDraw:
    """Random parameters for ``n`` images of ``height`` x ``width``."""
    g = generator
    b, c, s = (_factor(n, v, g) for v in (cfg.brightness, cfg.contrast, cfg.saturation))
    flip = torch.rand(n, generator=g) < cfg.flip_p
    pad = pad_pixels(cfg, width)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    erase = torch.rand(n, generator=g) < cfg.erase_p
    box = torch.zeros(4, n, dtype=torch.long)
    area = height * width
    lo, hi = cfg.erase_min_area, cfg.erase_max_area
    for i in range(n):
        if not erase[i]:
            continue
        erase[i] = False
        for _ in range(ERASE_ATTEMPTS):  # Zhong et al.: draw until a box fits inside the image
            u = torch.rand(3, generator=g).tolist()
            target = (lo + (hi - lo) * u[0]) * area
            aspect = cfg.erase_min_aspect + (1.0 / cfg.erase_min_aspect - cfg.erase_min_aspect) * u[1]
            h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < h < height and 0 < w < width:
                y = int(torch.randint(0, height - h + 1, (1,), generator=g))
                x = int(torch.randint(0, width - w + 1, (1,), generator=g))
                box[:, i] = torch.tensor([y, x, h, w])
                erase[i] = True
                break
    return AugDraw(b, c, s, flip, dy, dx, erase, *box)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor.view(-1, 1, 1, 1) * x + (1.0 - factor.view(-1, 1, 1, 1)) * other).clamp(0.0, 1.0)


def augment(x: torch.Tensor, draw: AugDraw, cfg: ControlAugConfig) -> torch.Tensor:
    """The augmented batch, ImageNet-normalised like ``x`` (N, 3, H, W); ``x`` is left untouched."""
    n, _, height, width = x.shape
    dev, dtype = x.device, torch.float32
    mean = torch.tensor(IMAGENET_MEAN, device=dev, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=dev, dtype=dtype).view(1, 3, 1, 1)
    grey_w = torch.tensor(GREY, device=dev, dtype=dtype).view(1, 3, 1, 1)
    img = (x.float() * std + mean).clamp(0.0, 1.0)
    img = (img * draw.brightness.to(dev, dtype).view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    grey = (img * grey_w).sum(1, keepdim=True)
    img = _blend(img, grey.mean((2, 3), keepdim=True), draw.contrast.to(dev, dtype))
    img = _blend(img, (img * grey_w).sum(1, keepdim=True), draw.saturation.to(dev, dtype))
    img = torch.where(draw.flip.to(dev).view(-1, 1, 1, 1), img.flip(3), img)
    pad = pad_pixels(cfg, width)
    if pad:
        padded = torch.nn.functional.pad(img, (pad, pad, pad, pad))
        img = torch.stack([padded[i, :, int(draw.dy[i]):int(draw.dy[i]) + height,
                                  int(draw.dx[i]):int(draw.dx[i]) + width] for i in range(n)])
    out = (img - mean) / std
    for i in torch.nonzero(draw.erase).flatten().tolist():
        y, x0, h, w = (int(v[i]) for v in (draw.ey, draw.ex, draw.eh, draw.ew))
        out[i, :, y:y + h, x0:x0 + w] = 0.0  # the ImageNet mean pixel
    return out.to(x.dtype)


def augmented_view(x: torch.Tensor, cfg: ControlAugConfig, info: dist.DistInfo = dist.DistInfo(),
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """This rank's images augmented with draws made for the global batch (``world_size`` x local)."""
    draw = draw_augmentation(x.shape[0] * info.world_size, x.shape[2], x.shape[3], cfg, generator)
    return augment(x, draw.shard(info), cfg)

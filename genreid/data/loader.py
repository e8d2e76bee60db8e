"""Image dataset over a manifest: bicubic resize to the network size, ImageNet normalisation.

No other augmentation on purpose: in GCL the generated views are the augmentation (docs/method.md).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from genreid.errors import DataError
from genreid.utils.seeding import torch_generator, worker_init_fn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# DataLoader ``worker_init_fn``: numpy/random in each worker seeded from torch's per-worker seed.
seed_worker = worker_init_fn


def image_transform(height: int, width: int) -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize((height, width), interpolation=InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Back from ImageNet-normalised to [0, 1] (for pictures), any leading batch dims."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0.0, 1.0)


class ImageDataset(Dataset):
    """Items ``{'image': 3xHxW float, 'pid': int, 'camid': int, 'index': int}`` from a manifest frame.

    ``index`` is the row position in ``df``, which other stores (memory bank, mesh renders) key on.
    There is no random augmentation, so an image's tensor never changes: ``cache=True`` keeps
    them in memory after the first read (small datasets; 64x32 costs 24 KB per image).
    """

    def __init__(self, df: pd.DataFrame, height: int, width: int, cache: bool = False):
        missing = [c for c in ("path", "pid", "camid") if c not in df.columns]
        if missing:
            raise ValueError(f"ImageDataset needs columns path, pid, camid; missing {missing}")
        self.paths = [str(p) for p in df["path"]]
        self.pids = [int(p) for p in df["pid"]]
        self.camids = [int(c) for c in df["camid"]]
        self.height, self.width = height, width
        self.transform = image_transform(height, width)
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def load_image(self, index: int) -> Image.Image:
        path = self.paths[index]
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {path} ({exc})",
                            "the prepared dataset is damaged: rerun `dvc repro prepare` (dvc checkout restores it)"
                            ) from None

    def image(self, index: int) -> torch.Tensor:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        tensor = self.transform(self.load_image(index))
        if self._cache is not None:
            self._cache[index] = tensor
        return tensor

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.image(index), "pid": self.pids[index], "camid": self.camids[index], "index": index}

"""Features of a model over a dataset, for evaluation: E_id in eval mode, one resize, no flip by
default (docs/data_and_evaluation.md#evaluation-protocol).

The dataset yields dicts with 'image' (3 x H x W float tensor), 'pid', 'camid' and 'index'
(``genreid.data.loader.ImageDataset``); any torch Dataset of that shape works. The model returns
``(a, f)`` and ``f`` (B x D) is the embedding; a model returning a tensor is used as is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from genreid.errors import GenreidError


@dataclass(frozen=True)
class Features:
    """L2-normalised embeddings (float32, CPU) with their labels, in dataset order."""

    features: torch.Tensor
    pids: np.ndarray
    camids: np.ndarray

    def __len__(self) -> int:
        return self.features.shape[0]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration, then the caller's mode back (a trainer may call this mid-epoch)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def embed(model: nn.Module, images: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """Embedding f of a batch; with ``flip`` the mean of the image and its mirror (before normalising)."""
    out = model(images)
    f = out[1] if isinstance(out, (tuple, list)) else out
    if flip:
        out_flip = model(torch.flip(images, dims=[3]))
        f = f + (out_flip[1] if isinstance(out_flip, (tuple, list)) else out_flip)
    if f.ndim != 2:
        raise GenreidError(f"the model's embedding has shape {tuple(f.shape)}, expected batch x dim",
                           "the encoder must return (a, f) with f of shape (B, D)")
    return f


def extract_features(model: nn.Module, dataset: Dataset, *, batch_size: int = 128,
                     device: torch.device | str = "cpu", flip: bool = False, num_workers: int = 0) -> Features:
    """Run ``model`` over ``dataset`` in eval mode without gradients, in dataset order (no shuffle);
    features are L2-normalised."""
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise GenreidError("cannot extract features from an empty dataset", "check the split's manifest")
    device = torch.device(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    feats, pids, camids = [], [], []
    with eval_mode(model), torch.inference_mode():
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            f = embed(model, images, flip)
            feats.append(F.normalize(f.float(), dim=1).cpu())
            pids.append(np.asarray(batch["pid"]).reshape(-1))
            camids.append(np.asarray(batch["camid"]).reshape(-1))
    features = torch.cat(feats)
    if not torch.isfinite(features).all():
        raise GenreidError("the model produced NaN/inf features", "the checkpoint is probably diverged; "
                           "retrain or pick an earlier checkpoint")
    return Features(features=features, pids=np.concatenate(pids).astype(np.int64),
                    camids=np.concatenate(camids).astype(np.int64))

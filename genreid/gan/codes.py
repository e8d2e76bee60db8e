"""E_id's appearance codes over the training set: the statistics ``code_norm`` standardises with
(fixed before stage 2's first step, kept in stage 3)."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def appearance_codes(id_enc: torch.nn.Module, dataset: torch.utils.data.Dataset, device: torch.device | str,
                     max_images: int = 4096, batch_size: int = 128) -> torch.Tensor:
    """E_id's appearance codes of up to ``max_images`` training images, evenly spread (a fixed choice)."""
    rows = np.unique(np.linspace(0, len(dataset) - 1, num=min(max_images, len(dataset))).round().astype(int))
    codes = []
    for start in range(0, len(rows), batch_size):
        x = torch.stack([dataset[int(r)]["image"] for r in rows[start:start + batch_size]]).to(device)
        codes.append(id_enc(x)[0].float().cpu())
    return torch.cat(codes)

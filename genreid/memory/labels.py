"""This epoch's pseudo-labels and their quality, kept as checkpoint state so an epoch resumed
half-way trains on the labels it started with (clustering is not repeated)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class EpochLabels:
    def __init__(self) -> None:
        self.labels: np.ndarray | None = None
        self.quality: dict[str, Any] = {}

    def set(self, labels: np.ndarray, quality: dict[str, Any]) -> None:
        self.labels, self.quality = np.asarray(labels, dtype=np.int64), dict(quality)

    def record(self) -> dict[str, float]:
        """Numeric quality entries as ``pseudo_<name>`` for the epoch record (dvclive: pseudo/<name>)."""
        return {f"pseudo_{k}": float(v) for k, v in self.quality.items()
                if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}

    def state_dict(self) -> dict[str, Any]:
        return {"labels": None if self.labels is None else torch.from_numpy(self.labels.copy()),
                "quality": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.quality.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.labels = None if state["labels"] is None else state["labels"].cpu().numpy().astype(np.int64)
        self.quality = dict(state["quality"])

"""Model selection: the one record every training stage writes (docs/data_and_evaluation.md#model-selection).

The encoder kept is the one with the best validation mAP (query = gallery on the validation
split carved from training identities) or, without a validation split or with
``selection: last``, the last epoch. The test split is never touched while training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

VAL_MAP, LAST_EPOCH = "val_map", "last_epoch"


@dataclass
class Selection:
    """What was kept and why: written into encoder.pt's ``extra`` and the stage's summary.json."""

    selected_on: str  # "val_map" | "last_epoch"
    selected_epoch: int | None
    last_epoch: int | None
    val_map: float | None = None
    val_map_history: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BestModel:
    """Tracks the best validation mAP and that epoch's weights (registered checkpoint state)."""

    def __init__(self, module: nn.Module, use_validation: bool):
        self.module = module
        self.use_validation = use_validation
        self.epoch: int | None = None
        self.val_map: float | None = None
        self.weights: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, float]] = []

    def offer(self, epoch: int, val_map: float) -> None:
        """Record a validation result; keep these weights when strictly better (ties keep the earlier)."""
        self.history.append({"epoch": epoch, "val_map": float(val_map)})
        if self.use_validation and (self.val_map is None or val_map > self.val_map):
            self.epoch, self.val_map = epoch, float(val_map)
            self.weights = {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    def selection(self, last_epoch: int | None) -> Selection:
        if self.weights is not None:
            return Selection(VAL_MAP, self.epoch, last_epoch, self.val_map, list(self.history))
        return Selection(LAST_EPOCH, last_epoch, last_epoch, None, list(self.history))

    def selected_weights(self) -> dict[str, torch.Tensor] | None:
        return self.weights

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "val_map": self.val_map, "weights": self.weights, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.val_map = state["epoch"], state["val_map"]
        self.weights, self.history = state["weights"], list(state["history"])

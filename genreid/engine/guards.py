"""Stop on a non-finite loss, naming the term, on every rank together (no rank left waiting)."""

from __future__ import annotations

import math

import torch

from genreid.engine.dist import DistInfo, any_rank
from genreid.errors import TrainingDiverged


def first_non_finite(values: dict[str, float | torch.Tensor]) -> tuple[str, float] | None:
    for name, value in values.items():
        v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(v):
            return name, v
    return None


def assert_finite(values: dict[str, float | torch.Tensor], where: str, fix: str, info: DistInfo = DistInfo()) -> None:
    """Raise TrainingDiverged naming the first non-finite term (the last good checkpoint stays)."""
    bad = first_non_finite(values)
    if any_rank(bad is not None, info) and bad is None:
        bad = ("loss on another rank", float("nan"))
    if bad is not None:
        raise TrainingDiverged(f"{bad[0]} became {bad[1]} at {where}; training stopped, the last good "
                               "checkpoint is kept", fix)

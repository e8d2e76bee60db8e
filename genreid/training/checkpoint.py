"""Checkpoints that survive a kill and resume exactly.

A checkpoint is a dict of state (module/optimiser/scheduler state_dicts, counters, RNG states)
written atomically as ``ckpt_<step:09d>.pt``; ``latest()`` returns the newest one that loads.
A file that fails to load (e.g. the disk filled during an older, non-atomic write) is reported
and skipped, never silently used. The last ``keep`` files are kept.

Unlike the authors' code, module weights are loaded strictly: :func:`load_state_strict`
raises :class:`CheckpointError` with the missing and unexpected keys listed.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genreid.errors import CheckpointError
from genreid.utils.atomic import clean_stale_temporaries, torch_save

log = logging.getLogger(__name__)
_NAME = re.compile(r"^ckpt_(\d{9})\.pt$")


def rng_state() -> dict[str, Any]:
    """Every RNG a training loop draws from, so a resumed run continues the same streams."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointManager:
    """Numbered, atomic checkpoints in one folder (a DVC ``persist: true`` output)."""

    def __init__(self, folder: str | Path, keep: int = 2):
        self.folder = Path(folder)
        self.keep = max(1, keep)
        self.folder.mkdir(parents=True, exist_ok=True)
        removed = clean_stale_temporaries(self.folder)
        if removed:
            log.info("removed %d unfinished checkpoint file(s) from a killed run in %s", removed, self.folder)

    def paths(self) -> list[Path]:
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def save(self, step: int, state: dict[str, Any], with_rng: bool = True) -> Path:
        """Write ``state`` for global ``step`` (iteration or epoch counter chosen by the caller)."""
        payload = dict(state)
        payload["step"] = int(step)
        if with_rng:
            payload["rng"] = rng_state()
        path = torch_save(payload, self.folder / f"ckpt_{step:09d}.pt")
        for old in self.paths()[:-self.keep]:
            old.unlink(missing_ok=True)
        return path

    def latest(self, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The newest loadable checkpoint (with RNG state restored by :meth:`restore_rng`), or None."""
        for path in reversed(self.paths()):
            try:
                return torch.load(path, map_location=map_location, weights_only=False)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped with a warning
                log.warning("skipping unreadable checkpoint %s (%s)", path, exc)
        return None

    @staticmethod
    def restore_rng(state: dict[str, Any]) -> None:
        if "rng" in state:
            set_rng_state(state["rng"])

    def clear(self) -> None:
        for p in self.paths():
            p.unlink(missing_ok=True)


def describe_key_mismatch(missing: list[str], unexpected: list[str], limit: int = 12) -> str:
    def block(title: str, keys: list[str]) -> str:
        if not keys:
            return ""
        shown = "\n".join(f"      {k}" for k in keys[:limit])
        more = f"\n      ... and {len(keys) - limit} more" if len(keys) > limit else ""
        return f"\n    {title} ({len(keys)}):\n{shown}{more}"

    return block("missing keys (in the model, not in the file)", missing) + \
        block("unexpected keys (in the file, not in the model)", unexpected)


def load_state_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load weights strictly; a mismatch raises CheckpointError listing every differing key and shape."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shape_errors = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in sorted(set(own) & set(state_dict))
                    if hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape_errors:
        detail = describe_key_mismatch(missing, unexpected)
        if shape_errors:
            detail += "\n    shape mismatches:\n" + "\n".join(f"      {s}" for s in shape_errors[:12])
        raise CheckpointError(
            f"checkpoint {source} does not match the {type(module).__name__} architecture:{detail}",
            "check that the params (backbone, widths, embedding size) match those the checkpoint was "
            "trained with, or retrain; weights are never loaded partially")
    module.load_state_dict(state_dict, strict=True)


def assert_finite(values: dict[str, float | torch.Tensor], where: str) -> None:
    """Raise TrainingDiverged naming the first non-finite loss term (the last good checkpoint stays)."""
    from genreid.errors import TrainingDiverged

    for name, value in values.items():
        v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        if not np.isfinite(v):
            raise TrainingDiverged(
                f"{name} became {v} at {where}; training stopped, the last good checkpoint is kept",
                "lower the learning rate or enable gradient clipping, then rerun to resume from the last checkpoint")

"""One checkpoint format for every training stage, written atomically, read as data only.

A checkpoint is ``{"format", "step", "epoch", "iter_in_epoch", "state": {name: state_dict},
"rng": {...}}`` in ``ckpt_<step:09d>.pt``: the engine's counters, the state of every object the
stage registered (modules, optimisers, scaler, memories, per-epoch labels, history, selection)
and every RNG the loop draws from, as tensors and plain Python values. Files are loaded with
``torch.load(weights_only=True)``: a file holding anything else (a crafted pickle) is refused
with :class:`CheckpointError` and nothing in it runs. A newest file that is merely unreadable
(truncated by an older, non-atomic writer) is reported and skipped. The last ``keep`` files stay.
"""

from __future__ import annotations

import logging
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genreid.errors import CheckpointError
from genreid.utils.atomic import clean_stale_temporaries, torch_save
from genreid.utils.integrity import sealed, verify_sealed
from genreid.utils.safe_load import safe_reason

log = logging.getLogger(__name__)
FORMAT = "genreid-checkpoint-v2"
_NAME = re.compile(r"^ckpt_(\d{9})\.pt$")


def to_plain(obj: Any) -> Any:
    """``obj`` with numpy values made tensors / Python scalars, so weights-only loading accepts it."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj, copy=True))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def rng_state() -> dict[str, Any]:
    """Every RNG a training loop draws from, so a resumed run continues the same streams."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_data_file(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` as data only; content that would need code to unpickle is refused by name."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain data; it was not loaded (loading it could run "
            f"code): {safe_reason(exc)}",
            "delete the file if you did not create it on purpose; genreid writes only weights-only files") from exc


class Checkpointer:
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

    def save(self, step: int, epoch: int, iter_in_epoch: int, state: dict[str, Any]) -> Path:
        """Write the registered ``state`` at global iteration ``step`` with the current RNG states."""
        payload = {"format": FORMAT, "step": int(step), "epoch": int(epoch), "iter_in_epoch": int(iter_in_epoch),
                   "state": to_plain(state), "rng": rng_state()}
        path = torch_save(sealed(payload), self.folder / f"ckpt_{step:09d}.pt")
        for old in self.paths()[:-self.keep]:
            old.unlink(missing_ok=True)
        return path

    def latest(self, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The newest loadable checkpoint, or None; unsafe or foreign files raise CheckpointError."""
        for path in reversed(self.paths()):
            try:
                blob = load_data_file(path, map_location)
            except CheckpointError:
                raise
            except Exception as exc:  # noqa: BLE001 - a truncated file is skipped with a warning
                log.warning("skipping unreadable checkpoint %s (%s)", path, exc)
                continue
            if not isinstance(blob, dict) or blob.get("format") != FORMAT:
                raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (written by another genreid version?)",
                                      f"delete the files in {self.folder} to start this stage afresh")
            for key, kind in (("state", dict), ("rng", dict), ("step", int), ("epoch", int), ("iter_in_epoch", int)):
                if not isinstance(blob.get(key), kind):
                    raise CheckpointError(f"{path}: entry {key!r} is {type(blob.get(key)).__name__}, expected "
                                          f"{kind.__name__}: the file is damaged or was written by other code",
                                          f"delete {path} (an older checkpoint in {self.folder}, if any, is used "
                                          "next) or all files there to start this stage afresh")
            try:
                verify_sealed(blob, path, "checkpoint")
            except CheckpointError as exc:  # a damaged newest file is skipped like a truncated one
                log.warning("skipping damaged checkpoint: %s", exc.problem)
                continue
            return blob
        return None

    def clear(self) -> None:
        for p in self.paths():
            p.unlink(missing_ok=True)

"""Loading torch files without running code, and keeping what we save loadable that way.

``torch.load(weights_only=False)`` unpickles arbitrary objects, so a crafted ``encoder.pt``
arriving through ``dvc pull`` or a shared folder would run its payload on the next stage.
Every genreid file is read with ``weights_only=True``; :func:`plain` turns what we store next
to the weights (epochs, histories, settings) into the types that loader accepts.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genreid.errors import CheckpointError

# What torch's weights-only unpickler says when a file references Python objects (as opposed to
# bytes that are no pickle at all, "Unsupported operand"): the crafted-file case.
_OBJECT_MARKS = ("GLOBAL", "Can only build", "Can only create new object")


def plain(obj: Any, where: str = "extra") -> Any:
    """``obj`` as dict/list/str/int/float/bool/None/tensors only (numpy scalars and arrays, tuples and
    paths converted), so ``torch.load(weights_only=True)`` reads it back. Anything else is a bug."""
    import numpy as np
    import torch

    if isinstance(obj, np.generic):  # before float: np.float64 subclasses it but pickles as numpy
        return obj.item()
    if obj is None or isinstance(obj, (torch.Tensor, str)):
        return obj
    for kind in (bool, int, float):  # subclasses (IntEnum, ...) would pickle as their own class
        if isinstance(obj, kind):
            return kind(obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return {str(k): plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where}: {type(obj).__name__} cannot be stored in a weights-only torch file; "
                    "store plain values (dict/list/str/int/float/bool/None) or tensors")


def canonical(obj: Any) -> Any:
    """``obj`` rebuilt from its JSON text, so the same content always gives the same object graph.

    Pickle (inside ``torch.save``) writes an object seen twice as a back-reference: a value shared
    by two entries in one run but loaded separately from a checkpoint in a resumed run would give
    other bytes for the same content. Values with tensors are returned as they are.
    """
    import json

    try:
        return json.loads(json.dumps(obj))
    except (TypeError, ValueError):
        return obj


def load_weights_only(path: str | os.PathLike, what: str, fix: str,
                      map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors a user can act on.

    A file holding other Python objects is refused before anything in it runs; the message
    names the file and says so. Unreadable files (truncated, not a torch file) name it too.
    """
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if any(mark in str(exc) for mark in _OBJECT_MARKS):
            raise CheckpointError(
                f"refused to load {what} {path}: it holds Python objects other than tensors and plain values, "
                "which could run code when unpickled; nothing in it was executed",
                f"do not use this file: delete it and {fix}; only load model files from sources you trust"
            ) from None
        raise CheckpointError(f"cannot read {what} {path}: not a torch file, or damaged ({_last_line(exc)})",
                              f"delete it and {fix}") from None
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt/foreign file: one fix for all
        raise CheckpointError(f"cannot read {what} {path}: {safe_reason(exc)}", f"delete it and {fix}") from None


# Advice in torch's and numpy's loading errors that genreid never repeats: it tells users to load the file
# with code execution enabled ("Re-running torch.load with weights_only=False will likely succeed",
# numpy's "allow_pickle=" hint, allow-listing globals).
_UNSAFE_ADVICE = ("weights_only", "allow_pickle", "trust", "safe_globals", "pickle.load", "arbitrary code",
                  "documentation of torch.load", "file an issue", "two options", "\x1b")


def safe_reason(exc: BaseException) -> str:
    """The specific reason of a loading error, without the library's advice to load the file unsafely."""
    import re

    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it references the Python object {found.group(1)}"
    found = re.search(r"Unsupported operand (\d+)", text)
    if found:
        return f"not a torch file (unknown pickle operand {found.group(1)})"
    if "pickled (object) data" in text:
        return "it is no numpy archive of plain arrays (it would need pickle to read)"
    sentences = re.split(r"(?<=[.!?:])\s+", " ".join(text.split()))
    kept = [s for s in sentences if s and not any(word in s for word in _UNSAFE_ADVICE)]
    return (" ".join(kept) or type(exc).__name__)[:200]


def _last_line(exc: Exception) -> str:
    """torch's unpickling errors are paragraphs; the specific reason, without their unsafe advice."""
    return safe_reason(exc)


def require_mappings(path: Path, blob: Mapping, entries: dict[str, str], prefix: str = "") -> None:
    """Each named entry of a loaded file must be a mapping (``"weights"``: of tensors only), so a
    damaged or foreign file is named with the entry at fault instead of failing deep in torch."""
    import torch

    for key, what in entries.items():
        value = blob.get(key)
        if not isinstance(value, Mapping):
            raise CheckpointError(f"{path}: entry '{prefix}{key}' ({what}) is {type(value).__name__}, expected a "
                                  "mapping", "the file is damaged or was written by other code: delete it and "
                                  "rerun the stage that writes it")
        if what == "weights":
            bad = [str(k) for k, v in value.items() if not isinstance(v, torch.Tensor)]
            if bad:
                raise CheckpointError(f"{path}: entry '{prefix}{key}' holds non-tensor values under {bad[:5]}",
                                      "delete the file and rerun the stage that writes it")

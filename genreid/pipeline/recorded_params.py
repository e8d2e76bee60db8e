"""Refuse results whose settings differ from what dvc.lock says they were computed with.

DVC reads params.yaml when a stage *ends* to write dvc.lock; a stage reads it when it *starts*. An edit
in between (a second ``dvc exp run -S seed=2`` refused while a ``dvc repro`` runs, an editor saving the
file) would record one seed for outputs computed with another. Every stage writes the config it used
next to its outputs (``config.resolved.yaml``); :func:`check_recorded_params` compares those with the
params dvc.lock records for the stage that wrote them, and ``collect`` / ``report`` refuse to archive
or report a mixed run. ``runtime`` is left out (threads and workers never change what is computed).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from genreid.errors import GenreidError

RESOLVED = "config.resolved.yaml"
IGNORED_SECTIONS = ("runtime",)
_MISSING = object()


def _lookup(tree: Any, dotted: str) -> Any:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _differences(used: Any, locked: Any, where: str) -> Iterator[str]:
    """``key: used X, dvc.lock Y`` for each leaf present on both sides that differs."""
    if isinstance(used, Mapping) and isinstance(locked, Mapping):
        for key in sorted(set(used) & set(locked), key=str):
            yield from _differences(used[key], locked[key], f"{where}.{key}")
        return
    if isinstance(used, float) or isinstance(locked, float):
        try:
            if math.isclose(float(used), float(locked), rel_tol=1e-9, abs_tol=0.0):
                return
        except (TypeError, ValueError):
            pass
    elif used == locked:
        return
    yield f"{where}: the stage used {used!r}, dvc.lock records {locked!r}"


def _recorded_configs(outs: list[Mapping[str, Any]], root: Path) -> Iterator[Path]:
    for out in outs:
        path = root / str(out.get("path", ""))
        candidate = path if path.name == RESOLVED else path / RESOLVED
        if candidate.is_file():
            yield candidate


def check_recorded_params(lock_path: Path = Path("dvc.lock"), under: str = "results/",
                          root: Path = Path(".")) -> int:
    """Raise GenreidError when an output under ``under`` was computed with other params than dvc.lock records
    for its stage; returns how many recorded configs were compared. No dvc.lock (a first run): nothing to do."""
    if not lock_path.is_file():
        return 0
    try:
        lock = yaml.safe_load(lock_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise GenreidError(f"cannot read {lock_path}: {exc}", "restore it with `git checkout dvc.lock`") from None
    checked, problems = 0, []
    for stage, entry in (lock.get("stages") or {}).items():
        if not isinstance(entry, Mapping):
            continue
        params = (entry.get("params") or {}).get("params.yaml") or {}
        outs = [o for o in entry.get("outs") or []
                if isinstance(o, Mapping) and str(o.get("path", "")).startswith(under)]
        for config in _recorded_configs(outs, root):
            try:
                used = yaml.safe_load(config.read_text()) or {}
            except (OSError, yaml.YAMLError):
                continue  # an unreadable record is reported by whatever reads it
            checked += 1
            for key, locked in sorted(params.items()):
                if key.split(".")[0] in IGNORED_SECTIONS:
                    continue
                value = _lookup(used, key)
                if value is not _MISSING:
                    problems += [f"{stage} ({config}): {d}" for d in _differences(value, locked, key)]
    if problems:
        shown = "\n    ".join(problems[:8]) + (f"\n    ... and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise GenreidError(
            f"results computed with other settings than dvc.lock records for them (params.yaml changed while "
            f"a stage ran, e.g. a `dvc exp run -S` during a `dvc repro`); nothing was archived or reported:\n    "
            f"{shown}",
            "rerun those stages with the settings you want (`dvc repro --force <stage>`); run experiments beside "
            "a running repro with `dvc exp run --temp` or `dvc queue` (docs/usage.md#experiments-while-a-repro-runs)")
    return checked

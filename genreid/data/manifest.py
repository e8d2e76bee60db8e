"""Per-split manifests of a prepared dataset: ``manifest_<split>.csv`` with path, pid, camid, split, sha1.

Paths are stored relative to the prepared folder (so the folder can move, and DVC caches it
as one unit) and made absolute on load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from genreid.data.extract import member_parts
from genreid.errors import DataError
from genreid.utils.atomic import write_text

MANIFEST_COLUMNS = ["path", "pid", "camid", "split", "sha1"]
PREPARED_SPLITS = ("train", "val", "query", "gallery")
_DTYPES = {"path": str, "pid": "int64", "camid": "int64", "split": str, "sha1": str}


def manifest_path(prepared_dir: str | os.PathLike, split: str) -> Path:
    return Path(prepared_dir) / f"manifest_{split}.csv"


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the manifest columns only, in the given row order, atomically."""
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"manifest frame lacks columns {missing}")
    return write_text(path, df[MANIFEST_COLUMNS].to_csv(index=False, lineterminator="\n"))


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"path": str, "split": str, "sha1": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read manifest {path}: {exc}",
                        f"rerun `dvc repro prepare@{path.parent.name}` to rewrite it") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    rewrite = f"rerun `dvc repro prepare@{path.parent.name}` to rewrite it"
    if missing:
        raise DataError(f"manifest {path} lacks columns {missing}", rewrite)
    for column in ("pid", "camid"):
        numbers = pd.to_numeric(df[column], errors="coerce")
        bad = df.index[numbers.isna() | (numbers != numbers.round())]
        if len(bad):
            row = int(bad[0])
            raise DataError(f"manifest {path} line {row + 2}: {column} {df[column].iloc[row]!r} is not an integer"
                            + (f" ({len(bad)} such rows)" if len(bad) > 1 else ""), rewrite)
    for i, rel in enumerate(df["path"]):
        if not isinstance(rel, str) or member_parts(rel) is None:
            raise DataError(f"manifest {path} line {i + 2}: path {rel!r} leaves the prepared folder "
                            "(absolute, '..' or empty); manifest paths are relative to the folder", rewrite)
    return df[MANIFEST_COLUMNS].astype(_DTYPES)


def load_prepared(prepared_dir: str | os.PathLike,
                  splits: tuple[str, ...] = PREPARED_SPLITS) -> dict[str, pd.DataFrame]:
    """The manifests of a prepared dataset with ``path`` made absolute, keyed by split."""
    prepared_dir = Path(prepared_dir)
    counts = _summary_counts(prepared_dir)
    out: dict[str, pd.DataFrame] = {}
    for split in splits:
        path = manifest_path(prepared_dir, split)
        if not path.is_file():
            raise DataError(f"prepared manifest {path} is missing",
                            f"run `dvc repro prepare@{prepared_dir.name}` first")
        df = read_manifest(path)
        if split in counts and counts[split] != len(df):
            raise DataError(f"manifest {path} has {len(df)} rows but {prepared_dir / 'summary.json'} says "
                            f"{split} has {counts[split]} images: the folder was edited or only partly copied",
                            f"rerun `dvc repro prepare@{prepared_dir.name}` (or `dvc checkout` it)")
        root = prepared_dir.absolute()
        df["path"] = [str(root / p) for p in df["path"]]
        out[split] = df
    return out


def _summary_counts(prepared_dir: Path) -> dict[str, int]:
    """Images per split as prepare recorded them in ``summary.json`` ({} when there is none)."""
    path = prepared_dir / "summary.json"
    if not path.is_file():
        return {}
    try:
        splits = json.loads(path.read_text()).get("splits", {})
        return {str(k): int(v["images"]) for k, v in splits.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc})",
                        f"rerun `dvc repro prepare@{prepared_dir.name}` to rewrite it") from None

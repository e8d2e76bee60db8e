"""Per-split manifests of a prepared dataset: ``manifest_<split>.csv`` with path, pid, camid, split, sha1.

Paths are stored relative to the prepared folder (so the folder can move, and DVC caches it
as one unit) and made absolute on load.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

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
    if missing:
        raise DataError(f"manifest {path} lacks columns {missing}",
                        f"rerun `dvc repro prepare@{path.parent.name}` to rewrite it")
    return df[MANIFEST_COLUMNS].astype(_DTYPES)


def load_prepared(prepared_dir: str | os.PathLike,
                  splits: tuple[str, ...] = PREPARED_SPLITS) -> dict[str, pd.DataFrame]:
    """The manifests of a prepared dataset with ``path`` made absolute, keyed by split."""
    prepared_dir = Path(prepared_dir)
    out: dict[str, pd.DataFrame] = {}
    for split in splits:
        path = manifest_path(prepared_dir, split)
        if not path.is_file():
            raise DataError(f"prepared manifest {path} is missing",
                            f"run `dvc repro prepare@{prepared_dir.name}` first")
        df = read_manifest(path)
        root = prepared_dir.absolute()
        df["path"] = [str(root / p) for p in df["path"]]
        out[split] = df
    return out

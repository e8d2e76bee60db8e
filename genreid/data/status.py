"""One line on the state of a dataset, for ``genreid doctor``: prepared, ready to prepare, or missing."""

from __future__ import annotations

import json
from pathlib import Path

from genreid.data.archive import archive_kind, archive_problem
from genreid.data.manifest import PREPARED_SPLITS, manifest_path
from genreid.data.registry import get_dataset_class
from genreid.errors import DataError


def dataset_status(name: str, *, prepared_dir: str | Path, source: str | Path | None = None,
                   url: str | None = None, canonical_size: bool = True) -> tuple[bool, str]:
    """``(ok, message)``: ok when prepared, or when ``prepare`` can run (source present or downloadable).

    A present archive must carry a zip/tar signature and, with ``canonical_size``, be large enough
    for the dataset's published image count: existence alone passed an HTML error page."""
    try:
        cls = get_dataset_class(name)
    except DataError as exc:
        return False, exc.problem
    prepared_dir = Path(prepared_dir)
    summary_path = prepared_dir / "summary.json"
    missing = [f"manifest_{s}.csv" for s in PREPARED_SPLITS if not manifest_path(prepared_dir, s).is_file()]
    if summary_path.is_file() and not missing:
        try:
            splits = json.loads(summary_path.read_text()).get("splits", {})
            counts = ", ".join(f"{s} {v['ids']} ids/{v['images']} images" for s, v in splits.items())
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
            return False, f"{summary_path} is unreadable; rerun `dvc repro prepare@{name}`"
        return True, f"prepared in {prepared_dir} ({counts})"
    if summary_path.is_file() and missing:
        return False, f"{prepared_dir} is incomplete (missing {', '.join(missing)}); rerun `dvc repro prepare@{name}`"
    if name in ("synthetic", "synthetic_b"):
        return True, f"not generated yet; `dvc repro prepare@{name}` generates it (no download needed)"
    if source is None:
        return False, f"no source configured (data.{name}.archive)"
    src = Path(source)
    if src.is_dir():
        return True, f"folder {src} found, not prepared yet: run `dvc repro prepare@{name}`"
    if src.is_file():
        problem = archive_problem(src, cls.min_archive_bytes() if canonical_size else 0)
        if problem:
            return False, f"{problem}; replace it with {cls.archive_name} (or its unpacked folder)"
        return True, (f"archive {src} found ({archive_kind(src)}, {src.stat().st_size / 2**20:.0f} MiB), "
                      f"not prepared yet: run `dvc repro prepare@{name}`")
    part = src.with_name(src.name + ".part")
    if url and not cls.no_download_reason:
        resume = f"; {part.stat().st_size / 2**20:.0f} MiB already downloaded" if part.is_file() else ""
        return True, f"{src} absent; `dvc repro prepare@{name}` downloads it from {url}{resume}"
    why = f" ({cls.no_download_reason})" if cls.no_download_reason else ""
    return False, f"{src} not found{why}; place {cls.archive_name} (or its unpacked folder) there"

"""The prepare stage's work: acquire, unpack, parse, verify, carve validation, write manifests.

Everything is built inside a temporary sibling of ``out_dir`` and renamed into place only when
every check passed, so later stages never read a half-prepared dataset, and a rerun after a
failure or a kill needs no manual cleanup (leftover temporaries are removed first).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from genreid.data.archive import acquire_archive, unpack
from genreid.data.base import (
    ReidDataset,
    check_counts,
    format_problems,
    query_ids_absent_from_gallery,
    summary_rows,
    summary_table,
)
from genreid.data.manifest import PREPARED_SPLITS, manifest_path, write_manifest
from genreid.data.registry import get_dataset_class
from genreid.data.validation import carve_validation
from genreid.data.verify import check_images
from genreid.errors import DataError
from genreid.utils.atomic import atomic_dir, write_json, write_text

log = logging.getLogger(__name__)
SHOWN_PROBLEMS = 100


@dataclass(frozen=True)
class PrepareOptions:
    """How a dataset is split and checked: the ``data`` keys of the same names (``val_fraction``, ``val_seed``,
    ``verify``, ``expected_counts``, ``max_bad_images``), and whether progress bars are shown.
    ``expected_counts``: ``"canonical"``, ``"off"`` or ``{split: {ids, images[, cameras]}}``."""

    val_fraction: float = 0.05
    val_seed: int = 0
    verify: str = "header"
    expected_counts: Any = "canonical"
    max_bad_images: int = 0
    progress: bool = True


def prepare_dataset(name: str, source: Mapping[str, Any] | str | os.PathLike, out_dir: str | os.PathLike,
                    options: PrepareOptions = PrepareOptions()) -> dict[str, Any]:
    """Prepare ``name`` into ``out_dir`` and return the summary (also written to ``summary.json``).

    ``source``: for real datasets the archive fields (``archive``, ``url``, ``sha256``, MSMT17's
    ``version``) or just the archive path; for ``synthetic`` the fields of
    ``data.synthetic`` (:class:`genreid.synth.SynthConfig`).
    """
    val_fraction, val_seed, verify = options.val_fraction, options.val_seed, options.verify
    expected_counts, max_bad_images, progress = options.expected_counts, options.max_bad_images, options.progress
    out_dir = Path(out_dir).absolute()
    cls = get_dataset_class(name)
    src = dict(source) if isinstance(source, Mapping) else {"archive": str(source)}
    problems_file = out_dir.with_name(f"{out_dir.name}.problems.txt")
    _remove_leftovers(out_dir)
    with atomic_dir(out_dir) as tmp:
        images = tmp / "images"
        images.mkdir()
        source_info = _materialise(name, cls, src, images, out_dir, progress)
        shown_root = _shown_root(source_info, images)
        try:
            dataset: ReidDataset = cls(images, **({"version": src["version"]} if "version" in src else {}))
            frames, problems = dataset.parse()
            problems += check_counts(frames, dataset.resolve_expected(expected_counts), name)
        except DataError as exc:
            raise DataError(str(exc.problem).replace(str(images), shown_root), exc.fix) from None
        all_paths = [p for df in frames.values() for p in df["path"]]
        checked = check_images(all_paths, verify, progress=progress)
        if len(checked.bad) > max_bad_images:
            problems += [f"{p}: {why}" for p, why in sorted(checked.bad.items())]
            if max_bad_images:
                problems.append(f"{len(checked.bad)} unreadable images, more than data.max_bad_images="
                                f"{max_bad_images}")
        problems += find_cross_split_duplicates(frames, checked.sha1)
        if problems:
            raise _verification_error(name, [p.replace(str(images), shown_root) for p in problems], problems_file)
        skipped = _skip_bad(frames, checked.bad, tmp)
        train, val = carve_validation(frames["train"], val_fraction, val_seed, name)
        splits = {"train": train, "val": val, "query": frames["query"], "gallery": frames["gallery"]}
        for split in PREPARED_SPLITS:
            write_manifest(_manifest_frame(splits[split], split, checked.sha1, tmp), manifest_path(tmp, split))
        absent = query_ids_absent_from_gallery(splits["query"], splits["gallery"])
        table = summary_table(name, splits)
        if absent:
            table += (f"\n  {len(absent)} query identit{'y' if len(absent) == 1 else 'ies'} absent from the "
                      f"gallery (never matchable; evaluation skips their queries): {_shown(absent)}")
        summary = {
            "dataset": name,
            "splits": {r["split"]: {k: r[k] for k in ("ids", "images", "cameras")} for r in summary_rows(splits)},
            "source": source_info,
            "val": {"fraction": val_fraction, "seed": val_seed, "raw_pids": sorted(int(p) for p in val["pid"].unique()),
                    "labels": "val keeps raw dataset pids; train pids are relabelled 0..N-1 in ascending raw order"},
            "verify": verify,
            "expected_counts": expected_counts if isinstance(expected_counts, str) else "custom",
            "skipped_images": skipped,
            "query_ids_absent_from_gallery": {"count": len(absent), "pids": absent},
            "table": table,
        }
        write_json(tmp / "summary.json", summary)
        write_text(tmp / "summary.txt", table + "\n")
    problems_file.unlink(missing_ok=True)
    print(table)
    if absent:
        log.warning("%s: %d query identities have no gallery image: %s", name, len(absent), _shown(absent))
    if skipped:
        log.warning("%s: skipped %d unreadable image(s) (data.max_bad_images=%d): %s", name, len(skipped),
                    max_bad_images, ", ".join(s["path"] for s in skipped))
    return summary


def _shown(pids: list[int], limit: int = 10) -> str:
    return ", ".join(map(str, pids[:limit])) + (f", ... ({len(pids) - limit} more)" if len(pids) > limit else "")


def _materialise(name: str, cls: type, src: dict[str, Any], images: Path, out_dir: Path,
                 progress: bool) -> dict[str, Any]:
    """Put the dataset tree under ``images`` (generate, unpack or copy); returns where it came from."""
    if name in ("synthetic", "synthetic_b"):
        from genreid.config.sections.data import synth_settings
        from genreid.synth import check_generated, generate_synthreid  # heavy (renderer)

        # The generator keeps finished batches in work_dir, outside our temporary folder, so a
        # killed generation resumes; it moves the finished tree into ``images`` itself.
        work_dir = out_dir.with_name(f".{out_dir.name}.generating")
        summary = generate_synthreid(images, synth_settings(name, src), work_dir=work_dir, progress=progress)
        check = check_generated(images, summary)  # the committed reference hash: a difference is a warning
        gt = images / "ground_truth.npz"
        if gt.is_file():
            shutil.copy2(gt, images.parent / "ground_truth.npz")
        return {"kind": "generated", "params": src, "content_sha256": check["content_sha256"],
                "reference": check["reference"]}
    unknown = set(src) - {"archive", "url", "sha256", "version"}
    if unknown or "archive" not in src:
        raise DataError(f"{name}: source needs 'archive' (and optionally url, sha256, version), got {sorted(src)}",
                        f"check data.{name} in params.yaml")
    path = acquire_archive(src["archive"], dataset=name, archive_name=cls.archive_name, url=src.get("url"),
                           sha256=src.get("sha256"), no_download_reason=cls.no_download_reason)
    log.info("%s: unpacking %s", name, path)
    unpack(path, images, dataset=name)
    return {"kind": "folder" if path.is_dir() else "archive", "path": str(src["archive"]),
            "sha256": src.get("sha256")}


def _skip_bad(frames: dict[str, pd.DataFrame], bad: Mapping[str, str], root: Path) -> list[dict[str, str]]:
    """Drop tolerated unreadable images from the frames and the tree, so nothing reads them later."""
    if not bad:
        return []
    for split, df in frames.items():
        frames[split] = df[~df["path"].isin(list(bad))].reset_index(drop=True)
    skipped = []
    for p, why in sorted(bad.items()):
        Path(p).unlink(missing_ok=True)
        skipped.append({"path": Path(p).relative_to(root).as_posix(), "reason": why})
    return skipped


def find_cross_split_duplicates(frames: Mapping[str, pd.DataFrame], sha1: Mapping[str, str]) -> list[str]:
    """Identical image content in training and test splits leaks the test set into training."""
    seen: dict[str, str] = {}
    for split in ("train", "val"):
        for p in frames[split]["path"] if split in frames else []:
            seen.setdefault(sha1.get(p, ""), p)
    seen.pop("", None)
    problems = []
    for split in ("query", "gallery"):
        for p in frames[split]["path"]:
            if sha1.get(p) in seen:
                problems.append(f"{p}: identical content to training image {seen[sha1[p]]} "
                                "(test images must not appear in training)")
    return problems


def _manifest_frame(df: pd.DataFrame, split: str, sha1: Mapping[str, str], root: Path) -> pd.DataFrame:
    out = pd.DataFrame({
        "path": [Path(p).relative_to(root).as_posix() for p in df["path"]],
        "pid": df["pid"].astype("int64").to_numpy(),
        "camid": df["camid"].astype("int64").to_numpy(),
        "split": split,
        "sha1": [sha1[p] for p in df["path"]],
    })
    return out.sort_values("path", kind="stable").reset_index(drop=True)


def _shown_root(source_info: Mapping[str, Any], images: Path) -> str:
    """How paths inside the temporary tree are shown: as inside the user's archive or folder."""
    if source_info["kind"] == "archive":
        return str(source_info["path"])
    if source_info["kind"] == "folder":
        return str(Path(source_info["path"]).absolute().parent)
    return str(images)


def _verification_error(name: str, shown: list[str], problems_file: Path) -> DataError:
    """One error with every problem; the full list goes to a file beside the output if it is long."""
    header = f"{name}: preparation failed with {len(shown)} problem(s); nothing was written"
    if len(shown) > SHOWN_PROBLEMS:
        write_text(problems_file, "\n".join(shown) + "\n")
        header += f" (full list in {problems_file})"
    return DataError(format_problems(header, shown, limit=SHOWN_PROBLEMS),
                     "fix or replace the dataset source (an intact copy of the original archive) and rerun; "
                     "data.max_bad_images tolerates a few unreadable images, data.expected_counts: off skips the "
                     "count check")


def _remove_leftovers(out_dir: Path) -> None:
    """Temporaries of a killed run: ``.<name>.*.tmp`` folders and ``.<name>.old`` beside ``out_dir``."""
    parent = out_dir.parent
    if not parent.is_dir():
        return
    for p in [*parent.glob(f".{out_dir.name}.*.tmp"), parent / f".{out_dir.name}.old"]:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            log.info("removed leftover %s of an interrupted run", p)

"""The torchreid-style dataset base class: locating the tree, parsing, checks, summary table.

A dataset is one small subclass that says where its split folders are, how a file name (or
list file) gives ``pid`` and ``camid``, and its canonical counts. Everything else, relabelling,
collecting every problem at once, count checks and the summary table, lives here so that all
datasets behave the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from genreid.errors import DataError

SPLITS = ("train", "query", "gallery")
COLUMNS = ["path", "pid", "camid", "raw_pid"]


@dataclass(frozen=True)
class SplitCounts:
    """Expected size of one split; ``cameras`` None means 'not checked'."""

    ids: int
    images: int
    cameras: int | None = None


@dataclass
class ReidSplits:
    """The splits of one dataset; ``val`` exists only once prepare has carved it."""

    train: pd.DataFrame
    query: pd.DataFrame
    gallery: pd.DataFrame
    val: pd.DataFrame | None = None

    def keys(self) -> list[str]:
        return [s for s in ("train", "val", "query", "gallery") if getattr(self, s) is not None]

    def __getitem__(self, split: str) -> pd.DataFrame:
        if split not in self.keys():
            raise KeyError(f"no split {split!r}; available: {self.keys()}")
        return getattr(self, split)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        return [(k, self[k]) for k in self.keys()]


@dataclass
class ParsedSplit:
    """Rows ``(absolute path, raw pid, 0-based camid)`` plus every problem met while listing."""

    rows: list[tuple[str, int, int]]
    problems: list[str]


class ReidDataset:
    """Base class: subclasses set the class attributes and implement :meth:`list_split`."""

    name: ClassVar[str] = ""
    dataset_dir: ClassVar[str] = ""            # folder name inside the archive
    archive_name: ClassVar[str] = ""           # canonical archive file name
    canonical_counts: ClassVar[dict[str, SplitCounts]] = {}
    # None: may be downloaded from a configured URL; otherwise the reason it cannot be.
    no_download_reason: ClassVar[str | None] = None

    def __init__(self, root: str | Path):
        self.root = Path(root).absolute()
        self.dataset_root = self.locate(self.root)

    # ---- layout ---------------------------------------------------------------------------
    def required_paths(self, dataset_root: Path) -> list[str]:
        """Relative paths that must exist in the dataset tree (folders or list files)."""
        raise NotImplementedError

    def is_dataset_root(self, folder: Path) -> bool:
        return all((folder / p).exists() for p in self.required_paths(folder))

    def locate(self, root: Path) -> Path:
        """Find the dataset tree: ``root`` itself, ``root/<dataset_dir>`` or one or two levels down."""
        if not root.is_dir():
            raise DataError(f"{self.name}: dataset folder {root} does not exist",
                            f"unpack {self.archive_name} there or point the loader at the unpacked folder")
        candidates = [root, root / self.dataset_dir]
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            candidates.append(child)
            candidates.extend(sorted(p for p in child.iterdir() if p.is_dir()))
        for cand in candidates:
            if cand.is_dir() and self.is_dataset_root(cand):
                return cand
        best = root / self.dataset_dir if (root / self.dataset_dir).is_dir() else root
        missing = [p for p in self.required_paths(best) if not (best / p).exists()]
        raise DataError(f"{self.name}: {best} is not a complete {self.name} tree; missing: {', '.join(missing)}",
                        f"supply the original {self.archive_name} (or its unpacked folder) containing "
                        f"{', '.join(self.required_paths(best))}")

    # ---- parsing --------------------------------------------------------------------------
    def list_split(self, split: str) -> ParsedSplit:
        """All images of ``split`` with raw pid and 0-based camid; junk already dropped."""
        raise NotImplementedError

    def parse(self) -> tuple[dict[str, pd.DataFrame], list[str]]:
        """Parse every split; returns frames (train relabelled) and every problem found."""
        frames: dict[str, pd.DataFrame] = {}
        problems: list[str] = []
        for split in SPLITS:
            parsed = self.list_split(split)
            problems.extend(parsed.problems)
            parsed.rows, outside = self._inside_tree(parsed.rows)
            problems.extend(f"{p}: resolves outside the dataset folder {self.dataset_root}" for p in outside)
            df = pd.DataFrame(parsed.rows, columns=["path", "raw_pid", "camid"])
            df = df.sort_values("path", kind="stable").reset_index(drop=True)
            if split == "train":
                df["pid"] = relabel(df["raw_pid"])
            else:
                df["pid"] = df["raw_pid"]
            frames[split] = df[COLUMNS].astype({"path": str, "pid": "int64", "camid": "int64",
                                                "raw_pid": "int64"})
            if not parsed.rows and not parsed.problems:
                problems.append(f"{self.name}: split {split!r} has no images under {self.dataset_root}")
        return frames, problems

    def _inside_tree(self, rows: list[tuple[str, int, int]]) -> tuple[list[tuple[str, int, int]], list[str]]:
        """Every image must live inside the dataset tree (a list file or a link could point anywhere);
        paths are compared after resolving '..' and links, so neither can escape."""
        root = self.dataset_root.resolve()
        kept, outside = [], []
        for row in rows:
            (kept if Path(row[0]).resolve().is_relative_to(root) else outside).append(row)
        return kept, [r[0] for r in outside]

    def load(self, expected_counts: Any = "off") -> ReidSplits:
        """Parse and check; every problem (names, counts) is reported in one error."""
        frames, problems = self.parse()
        problems.extend(check_counts(frames, self.resolve_expected(expected_counts), self.name))
        if problems:
            raise DataError(format_problems(f"{self.name}: {len(problems)} problem(s) in {self.dataset_root}",
                                            problems),
                            "replace the dataset with an intact copy of the original archive and rerun")
        return ReidSplits(**frames)

    # ---- expectations and summary ----------------------------------------------------------
    @classmethod
    def min_archive_bytes(cls) -> int:
        """A floor for the archive of the published dataset: 1 KiB per canonical image (real crops
        are 3-10 KiB of JPEG), so an error page or a partial download is caught before unpacking."""
        return 1024 * sum(c.images for c in cls.canonical_counts.values())

    def expected(self) -> dict[str, SplitCounts]:
        """The counts this dataset must have (canonical; synthetic reads its own summary)."""
        return dict(self.canonical_counts)

    def resolve_expected(self, expected_counts: Any) -> dict[str, SplitCounts] | None:
        """``"canonical"`` -> class counts, ``"off"``/None -> no check, a mapping -> as given (tests)."""
        if expected_counts in (None, "off"):
            return None
        if expected_counts == "canonical":
            return self.expected()
        if isinstance(expected_counts, Mapping):
            return {k: v if isinstance(v, SplitCounts) else SplitCounts(**v) for k, v in expected_counts.items()}
        raise DataError(f"data.expected_counts must be 'canonical' or 'off', got {expected_counts!r}",
                        "set data.expected_counts: canonical (or off to skip the count check)")


def relabel(pids: pd.Series) -> pd.Series:
    """Map raw pids to 0..N-1 in ascending raw order (torchreid's ``pid2label``)."""
    order = {pid: i for i, pid in enumerate(sorted(set(int(p) for p in pids)))}
    return pids.map(order).astype("int64")


def split_counts(df: pd.DataFrame) -> SplitCounts:
    return SplitCounts(ids=int(df["pid"].nunique()), images=len(df), cameras=int(df["camid"].nunique()))


def check_counts(frames: Mapping[str, pd.DataFrame], expected: Mapping[str, SplitCounts] | None,
                 name: str) -> list[str]:
    """One problem per mismatching number, naming the split, the expected and the found value."""
    if not expected:
        return []
    problems = []
    for split, exp in expected.items():
        if split not in frames:
            problems.append(f"{name}: split {split!r} expected but not found")
            continue
        found = split_counts(frames[split])
        for field in ("ids", "images", "cameras"):
            want = getattr(exp, field)
            got = getattr(found, field)
            if want is not None and want != got:
                problems.append(f"{name}: split {split!r}: expected {want} {field}, found {got}")
    return problems


def summary_rows(frames: Mapping[str, pd.DataFrame]) -> list[dict[str, Any]]:
    rows = []
    for split, df in frames.items():
        c = split_counts(df)
        rows.append({"split": split, "ids": c.ids, "images": c.images, "cameras": c.cameras})
    return rows


def summary_table(name: str, frames: Mapping[str, pd.DataFrame]) -> str:
    """The torchreid-style table: ids, images and cameras per split."""
    lines = [f"=> {name}", "  ----------------------------------------",
             f"  {'subset':<8} | {'# ids':>6} | {'# images':>9} | {'# cameras':>9}",
             "  ----------------------------------------"]
    for r in summary_rows(frames):
        lines.append(f"  {r['split']:<8} | {r['ids']:>6} | {r['images']:>9} | {r['cameras']:>9}")
    lines.append("  ----------------------------------------")
    return "\n".join(lines)


def query_ids_absent_from_gallery(query: pd.DataFrame, gallery: pd.DataFrame) -> list[int]:
    """Query identities with no gallery image at all: their queries can never be matched, so the
    evaluation skips them; the dataset summary counts them instead of leaving that silent."""
    return sorted(int(p) for p in set(query["pid"]) - set(gallery["pid"]))


def format_problems(header: str, problems: list[str], limit: int = 200) -> str:
    shown = problems[:limit]
    text = header + ":\n" + "\n".join(f"  - {p}" for p in shown)
    if len(problems) > limit:
        text += f"\n  ... and {len(problems) - limit} more"
    return text


class FileNameDataset(ReidDataset):
    """Datasets whose split folders hold ``*.jpg`` files named ``<pid>_c<cam>...`` (Market, Duke)."""

    split_dirs: ClassVar[dict[str, str]] = {}
    pattern: ClassVar[re.Pattern[str]]     # groups 'pid' and 'cam'
    num_cameras: ClassVar[int] = 0
    max_pid: ClassVar[int] = 10**6
    junk_pids: ClassVar[frozenset[int]] = frozenset()
    extensions: ClassVar[tuple[str, ...]] = (".jpg",)

    def required_paths(self, dataset_root: Path) -> list[str]:
        return list(self.split_dirs.values())

    def list_split(self, split: str) -> ParsedSplit:
        folder = self.dataset_root / self.split_dirs[split]
        rows: list[tuple[str, int, int]] = []
        problems: list[str] = []
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in self.extensions:
                continue  # Thumbs.db and friends ship inside the real archives
            m = self.pattern.fullmatch(path.name)
            if m is None:
                problems.append(f"{path}: file name does not follow the {self.name} scheme")
                continue
            pid, cam = int(m.group("pid")), int(m.group("cam"))
            if pid in self.junk_pids:
                continue
            if not (0 <= pid <= self.max_pid) or not (1 <= cam <= self.num_cameras):
                problems.append(f"{path}: pid {pid} or camera {cam} out of range "
                                f"(pid 0..{self.max_pid}, camera 1..{self.num_cameras})")
                continue
            rows.append((str(path), pid, cam - 1))
        return ParsedSplit(rows, problems)

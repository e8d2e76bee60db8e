"""MSMT17 (V1 and V2 layouts): pids come from the list files, cameras (1..15) from the file names.

Training = ``list_train`` + ``list_val`` (the open-reid / Cluster-Contrast convention, 32,621
images); the dataset's own ``list_val`` is not our validation split, which prepare carves
from training identities like for every other dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from genreid.data.base import ParsedSplit, ReidDataset, SplitCounts
from genreid.data.extract import member_parts
from genreid.data.registry import register_dataset

# version -> (train folder, test folder)
LAYOUTS: dict[str, tuple[str, str]] = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}
LIST_FILES = {"train": ("list_train.txt", "list_val.txt"), "query": ("list_query.txt",),
              "gallery": ("list_gallery.txt",)}


@register_dataset
class MSMT17(ReidDataset):
    name = "msmt17"
    dataset_dir = "MSMT17_V1"
    archive_name = "MSMT17_V1.tar.gz"
    no_download_reason = ("MSMT17 is distributed only on request by its authors (Peking University, "
                          "http://www.pkuvmc.com), so there is no public download")
    num_cameras: ClassVar[int] = 15
    canonical_counts = {
        "train": SplitCounts(ids=1041, images=32621, cameras=15),
        "query": SplitCounts(ids=3060, images=11659, cameras=15),
        "gallery": SplitCounts(ids=3060, images=82161, cameras=15),
    }

    def __init__(self, root: str | Path, version: str = "auto"):
        if version not in ("auto", *LAYOUTS):
            from genreid.errors import DataError

            raise DataError(f"data.msmt17.version must be auto, v1 or v2, got {version!r}",
                            "set data.msmt17.version: auto")
        self.version = version
        super().__init__(root)

    def detect_version(self, folder: Path) -> str:
        if self.version != "auto":
            return self.version
        for version, (train_dir, _) in LAYOUTS.items():
            if _child(folder, train_dir).is_dir():
                return version
        return "v1"

    def image_dirs(self, folder: Path) -> tuple[Path, Path]:
        """Train and test folders; some copies of V2 spell them ``mask_train_V2``."""
        train_dir, test_dir = LAYOUTS[self.detect_version(folder)]
        return _child(folder, train_dir), _child(folder, test_dir)

    def required_paths(self, dataset_root: Path) -> list[str]:
        train_dir, test_dir = (p.name for p in self.image_dirs(dataset_root))
        lists = [f for files in LIST_FILES.values() for f in files]
        return [train_dir, test_dir, *lists]

    def is_dataset_root(self, folder: Path) -> bool:
        if self.version == "auto":
            return any(_complete(folder, layout) for layout in LAYOUTS.values())
        return _complete(folder, LAYOUTS[self.version])

    def list_split(self, split: str) -> ParsedSplit:
        train_dir, test_dir = self.image_dirs(self.dataset_root)
        image_dir = train_dir if split == "train" else test_dir
        rows: list[tuple[str, int, int]] = []
        problems: list[str] = []
        for list_name in LIST_FILES[split]:
            list_path = self.dataset_root / list_name
            for lineno, line in enumerate(list_path.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                where = f"{list_path}:{lineno}"
                parts = line.split()
                if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                    problems.append(f"{where}: expected '<relative path> <pid>', got {line!r}")
                    continue
                rel, pid = parts[0], int(parts[1])
                if member_parts(rel) is None:
                    problems.append(f"{where}: path {rel!r} leaves the {image_dir.name}/ folder (absolute or "
                                    "'..'); list lines must name images inside the dataset")
                    continue
                fields = Path(rel).name.split("_")
                if len(fields) < 3 or not fields[2].isdigit() or not 1 <= int(fields[2]) <= self.num_cameras:
                    problems.append(f"{where}: cannot read the camera (third '_' field, 1..{self.num_cameras}) "
                                    f"from {rel!r}")
                    continue
                path = image_dir / rel
                if not path.is_file():
                    problems.append(f"{where}: listed image {path} is missing")
                    continue
                rows.append((str(path), pid, int(fields[2]) - 1))
        return ParsedSplit(rows, problems)


def _complete(folder: Path, layout: tuple[str, str]) -> bool:
    lists = [f for files in LIST_FILES.values() for f in files]
    return all(_child(folder, d).is_dir() for d in layout) and all((folder / f).is_file() for f in lists)


def _child(folder: Path, name: str) -> Path:
    """``folder/name``, matching the name case-insensitively when the exact one is absent."""
    exact = folder / name
    if exact.exists() or not folder.is_dir():
        return exact
    for child in folder.iterdir():
        if child.name.lower() == name.lower():
            return child
    return exact

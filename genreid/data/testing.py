"""Small fake dataset trees in the real naming schemes, for tests and for trying the pipeline.

Counts are scaled down; each builder returns the tree and the counts a correct parser must
find (junk dropped, distractors counted in the gallery), in the ``expected_counts`` format.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class FakeTree:
    root: Path            # the dataset folder itself (e.g. .../Market-1501-v15.09.15)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class TreeShape:
    """How much a fake tree holds: identities per split, cameras per identity, images per camera, image
    ``size`` (h, w) and the seed of its pixels. ``id_colours``: every identity's images share one colour
    (plus noise), so even an untrained network's features cluster by identity (the paper-shape smoke
    needs clusters to train on)."""

    train_ids: int = 5
    test_ids: int = 5
    cams_per_id: int = 3
    per_cam: int = 2
    size: tuple[int, int] = (16, 8)
    seed: int = 0
    id_colours: bool = False


def _write_jpeg(path: Path, rng: np.random.Generator, size: tuple[int, int], colour: np.ndarray) -> None:
    h, w = size
    pixels = np.clip(colour + rng.normal(0, 20, size=(h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def _counts(rows: list[tuple[int, int]]) -> dict[str, int]:
    return {"ids": len({p for p, _ in rows}), "images": len(rows), "cameras": len({c for _, c in rows})}


def make_market_tree(parent: str | Path, shape: TreeShape = TreeShape(train_ids=6, test_ids=6), *, junk: int = 2,
                     distractors: int = 3, num_cams: int = 6, dataset_dir: str = "Market-1501-v15.09.15") -> FakeTree:
    """Market-1501 layout: ``PPPP_cCsS_FFFFFF_BB.jpg``, junk ``-1_...`` in every split, ``0000_...``
    distractors in the gallery, a ``Thumbs.db`` like the real archive. Pids are sparse (odd numbers)."""
    train_ids, test_ids, cams_per_id, per_cam = shape.train_ids, shape.test_ids, shape.cams_per_id, shape.per_cam
    size, seed, id_colours = shape.size, shape.seed, shape.id_colours
    rng = np.random.default_rng(seed)
    root = Path(parent) / dataset_dir
    dirs = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    rows: dict[str, list[tuple[int, int]]] = {s: [] for s in dirs}
    for d in dirs.values():
        (root / d).mkdir(parents=True, exist_ok=True)
    frame = iter(range(1, 10**6))

    def put(split: str, pid: int, cam: int, counted: bool = True) -> None:
        name = f"{pid:04d}" if pid >= 0 else "-1"
        fname = f"{name}_c{cam}s{1 + cam % 3}_{next(frame) * 25:06d}_{1 + len(rows[split]) % 4:02d}.jpg"
        colour = (np.random.default_rng([seed, pid]).uniform(0, 255, 3) if id_colours and pid > 0
                  else rng.uniform(0, 255, 3))
        _write_jpeg(root / dirs[split] / fname, rng, size, colour)
        if counted:
            rows[split].append((pid, cam))

    for k in range(train_ids):
        pid = 2 * k + 1
        for cam in rng.choice(np.arange(1, num_cams + 1), cams_per_id, replace=False):
            for _ in range(per_cam):
                put("train", pid, int(cam))
    for k in range(test_ids):
        pid = 2 * (train_ids + k) + 1
        for j, cam in enumerate(rng.choice(np.arange(1, num_cams + 1), cams_per_id, replace=False)):
            if j < 2:  # query: one image per (id, camera) in two of its cameras
                put("query", pid, int(cam))
            for _ in range(per_cam):
                put("gallery", pid, int(cam))
    for k in range(distractors):
        put("gallery", 0, 1 + k % num_cams)
    for split in dirs:
        for k in range(junk):
            put(split, -1, 1 + k % num_cams, counted=False)
    (root / dirs["gallery"] / "Thumbs.db").write_bytes(b"\x00" * 16)
    return FakeTree(root, {s: _counts(r) for s, r in rows.items()})


def make_duke_tree(parent: str | Path, shape: TreeShape = TreeShape(), *, num_cams: int = 8) -> FakeTree:
    """DukeMTMC-reID layout: ``PPPP_cC_fFFFFFFF.jpg``; gallery-only ids like the real test set."""
    train_ids, test_ids, cams_per_id, per_cam = shape.train_ids, shape.test_ids, shape.cams_per_id, shape.per_cam
    size, seed, id_colours = shape.size, shape.seed, shape.id_colours
    rng = np.random.default_rng(seed)
    root = Path(parent) / "DukeMTMC-reID"
    dirs = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    rows: dict[str, list[tuple[int, int]]] = {s: [] for s in dirs}
    frame = iter(range(1, 10**7))

    def put(split: str, pid: int, cam: int) -> None:
        colour = np.random.default_rng([seed, pid]).uniform(0, 255, 3) if id_colours else rng.uniform(0, 255, 3)
        _write_jpeg(root / dirs[split] / f"{pid:04d}_c{cam}_f{next(frame) * 37:07d}.jpg", rng, size, colour)
        rows[split].append((pid, cam))

    for pid in range(1, train_ids + 1):
        for cam in rng.choice(np.arange(1, num_cams + 1), cams_per_id, replace=False):
            for _ in range(per_cam):
                put("train", pid, int(cam))
    for pid in range(train_ids + 1, train_ids + test_ids + 1):
        cams = rng.choice(np.arange(1, num_cams + 1), cams_per_id, replace=False)
        put("query", pid, int(cams[0]))
        for cam in cams[1:]:
            put("gallery", pid, int(cam))
    put("gallery", train_ids + test_ids + 50, 1)  # a gallery-only identity
    return FakeTree(root, {s: _counts(r) for s, r in rows.items()})


def make_msmt_tree(parent: str | Path, shape: TreeShape = TreeShape(), *, version: str = "v1") -> FakeTree:
    """MSMT17 layout: ``PPPP/PPPP_III_CC_0303morning_FFFF_N.jpg`` under train/test (V1) or
    mask_train_v2/mask_test_v2 (V2), and the four list files; one train image per id goes to list_val.
    With ``shape.id_colours`` test identities get other colours than training ones."""
    train_ids, test_ids, cams_per_id, per_cam = shape.train_ids, shape.test_ids, shape.cams_per_id, shape.per_cam
    size, seed, id_colours = shape.size, shape.seed, shape.id_colours
    rng = np.random.default_rng(seed)
    root = Path(parent) / ("MSMT17_V1" if version == "v1" else "MSMT17_V2")
    train_dir, test_dir = ("train", "test") if version == "v1" else ("mask_train_v2", "mask_test_v2")
    lists: dict[str, list[str]] = {k: [] for k in ("train", "val", "query", "gallery")}
    rows: dict[str, list[tuple[int, int]]] = {s: [] for s in ("train", "query", "gallery")}

    def put(folder: str, listing: str, split: str, pid: int, cam: int, idx: int) -> None:
        rel = f"{pid:04d}/{pid:04d}_{idx:03d}_{cam:02d}_0303morning_{idx * 7:04d}_{idx % 3}.jpg"
        colour = (np.random.default_rng([seed, pid + (0 if folder == train_dir else 10**6)]).uniform(0, 255, 3)
                  if id_colours else rng.uniform(0, 255, 3))
        _write_jpeg(root / folder / rel, rng, size, colour)
        lists[listing].append(f"{rel} {pid}")
        rows[split].append((pid, cam))

    for pid in range(train_ids):
        idx = 0
        for cam in rng.choice(np.arange(1, 16), cams_per_id, replace=False):
            for _ in range(per_cam):
                put(train_dir, "val" if idx == 0 else "train", "train", pid, int(cam), idx)
                idx += 1
    for pid in range(test_ids):
        idx = 0
        for j, cam in enumerate(rng.choice(np.arange(1, 16), cams_per_id, replace=False)):
            put(test_dir, "query" if j == 0 else "gallery", "query" if j == 0 else "gallery", pid, int(cam), idx)
            idx += 1
    for listing, lines in lists.items():
        (root / f"list_{listing}.txt").write_text("".join(line + "\n" for line in lines))
    return FakeTree(root, {s: _counts(r) for s, r in rows.items()})


def archive_tree(tree_root: str | Path, archive: str | Path) -> Path:
    """Pack a tree the way the real archives are packed (the dataset folder at the top)."""
    tree_root, archive = Path(tree_root), Path(archive)
    fmt = {".zip": "zip", ".gz": "gztar", ".tar": "tar"}[archive.suffix]
    base = str(archive)[: -len(".tar.gz")] if fmt == "gztar" else str(archive.with_suffix(""))
    archive.parent.mkdir(parents=True, exist_ok=True)
    made = shutil.make_archive(base, fmt, root_dir=tree_root.parent, base_dir=tree_root.name)
    return Path(made)

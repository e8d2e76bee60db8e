"""Render storage: a few large memory-mapped arrays per split, written resumably.

Layout in ``<out>/`` (CONTRIBUTING.md, "Files between stages"):

- ``<split>_render_<angle>.npy``  uint8 N x H x W, row i = row i of the split's manifest
- ``<split>_smpl.npz``            betas (N,10), pose (N,72) axis-angle, cam (N,3) image camera,
                                  detected (N,1): 1 where the estimator found the person, 0 = fallback
- ``<split>_index.csv``           row, path (relative to the prepared folder), pid, camid
- ``<split>_done.json``           the run signature and a CRC per file, written last: its
                                  presence means the split is complete (no timings: they live
                                  in ``results/<ds>/meshes/alignment.json``, not cached by DVC)

While a split is being rendered everything lives in ``.<split>.partial/``: one
``np.lib.format.open_memmap`` file per angle and per SMPL array, and ``progress.json``, which
records the CRC32 of each finished chunk. A rerun with the same signature re-checks those
CRCs and renders only the chunks that are missing or fail the check; a different signature
(other angles, size, estimator, manifest) starts the split over.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genreid.errors import DataError
from genreid.utils.atomic import atomic_path, write_json
from genreid.utils.faults import fault_point

SMPL_FIELDS = {"betas": 10, "pose": 72, "cam": 3, "detected": 1}


def render_file(root: Path, split: str, angle: int) -> Path:
    return Path(root) / f"{split}_render_{angle}.npy"


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a).tobytes())


def _same(a: Any, b: Any) -> bool:
    return json.loads(json.dumps(a, sort_keys=True)) == json.loads(json.dumps(b, sort_keys=True))


class RenderWriter:
    """Writes one split chunk by chunk; :meth:`pending` lists what a (re)run still has to do."""

    def __init__(self, root: str | os.PathLike, split: str, num_items: int, angles: Sequence[int],
                 height: int, width: int, chunk_size: int, signature: dict[str, Any]):
        self.root, self.split = Path(root), split
        self.n, self.angles, self.h, self.w = num_items, [int(a) for a in angles], height, width
        self.chunk_size = chunk_size
        self.signature = {**signature, "num_items": num_items, "angles": self.angles, "height": height,
                          "width": width, "chunk_size": chunk_size}
        self.work = self.root / f".{split}.partial"
        self.progress_path = self.work / "progress.json"
        self.done: dict[str, dict[str, int]] = {}
        self.renders: dict[int, np.memmap] = {}
        self.smpl: dict[str, np.memmap] = {}

    # ---------------------------------------------------------------- state
    def is_complete(self) -> bool:
        """True when a finished split with this signature is on disk and its files pass their CRCs."""
        marker = self.root / f"{self.split}_done.json"
        if not marker.is_file():
            return False
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            return False
        if not _same(info.get("signature"), self.signature):
            return False
        for name, crc in info.get("crc", {}).items():
            path = self.root / name
            if not path.is_file():
                return False
            try:
                arr = np.load(path, mmap_mode="r") if path.suffix == ".npy" else None
            except (OSError, ValueError):
                return False
            if arr is not None and (arr.shape != (self.n, self.h, self.w) or _crc(arr) != crc):
                return False
        return True

    def open(self) -> list[int]:
        """Open (or create) the partial files and return the chunk numbers still to render."""
        resumable = self.progress_path.is_file() and self._progress_matches()
        if not resumable:
            self._start_over()
        mode = "r+" if resumable else "w+"
        for a in self.angles:
            path = self.work / f"render_{a}.npy"
            final = render_file(self.root, self.split, a)
            if resumable and not path.exists() and final.exists():
                os.replace(final, path)  # a kill during finalize() moved it already
            self.renders[a] = self._memmap(path, mode, np.uint8, (self.n, self.h, self.w))
        for key, dim in SMPL_FIELDS.items():
            self.smpl[key] = self._memmap(self.work / f"smpl_{key}.npy", mode, np.float32, (self.n, dim))
        if resumable:
            self._drop_unverified()
        else:
            self._save_progress()
        return self.pending()

    def pending(self) -> list[int]:
        total = (self.n + self.chunk_size - 1) // self.chunk_size
        return [k for k in range(total) if str(k) not in self.done]

    def chunk_rows(self, k: int) -> slice:
        return slice(k * self.chunk_size, min(self.n, (k + 1) * self.chunk_size))

    # ---------------------------------------------------------------- writing
    def write_chunk(self, k: int, renders: dict[int, np.ndarray], smpl: dict[str, np.ndarray]) -> None:
        """Store chunk ``k`` then record it as done: data reaches the files before the sidecar says so."""
        rows = self.chunk_rows(k)
        crcs: dict[str, int] = {}
        for a in self.angles:
            self.renders[a][rows] = renders[a]
            self.renders[a].flush()
            crcs[str(a)] = _crc(self.renders[a][rows])
        for key in SMPL_FIELDS:
            self.smpl[key][rows] = smpl[key] if key in smpl else 1.0  # no "detected": every person found
            self.smpl[key].flush()
            crcs[key] = _crc(self.smpl[key][rows])
        fault_point("meshes.write")  # a kill here leaves data that no sidecar vouches for: redone
        self.done[str(k)] = crcs
        self._save_progress()

    def finalize(self, index: pd.DataFrame) -> None:
        """Move the finished arrays into place, write the SMPL table, the index and, last, the marker.

        Everything here is a DVC-cached output, so it holds only what the inputs determine (no
        timings, dates or devices): a rerun or a resumed run gives byte-identical files and
        nothing downstream retrains. Timings go to the stage's ``cache: false`` results file."""
        if self.pending():
            raise RuntimeError(f"finalize() with chunks pending: {self.pending()[:5]}")
        if len(index) != self.n:
            raise ValueError(f"index has {len(index)} rows, expected {self.n}")
        crcs: dict[str, int] = {}
        for a, mm in self.renders.items():
            mm.flush()
            crcs[render_file(self.root, self.split, a).name] = _crc(mm)
        smpl = {k: np.array(v) for k, v in self.smpl.items()}
        self.renders.clear()
        self.smpl.clear()
        for a in self.angles:
            os.replace(self.work / f"render_{a}.npy", render_file(self.root, self.split, a))
            fault_point("meshes.finalize")
        with atomic_path(self.root / f"{self.split}_smpl.npz", suffix=".npz") as tmp:
            np.savez(tmp, **smpl)
        with atomic_path(self.root / f"{self.split}_index.csv") as tmp:
            index.to_csv(tmp, index=False)
        write_json(self.root / f"{self.split}_done.json",
                   {"signature": self.signature, "crc": crcs})
        shutil.rmtree(self.work, ignore_errors=True)

    # ---------------------------------------------------------------- internals
    def _memmap(self, path: Path, mode: str, dtype: Any, shape: tuple[int, ...]) -> np.memmap:
        if mode == "r+":
            try:
                mm = np.lib.format.open_memmap(path, mode="r+")
                if mm.shape == shape and mm.dtype == dtype:
                    return mm
                del mm
            except (OSError, ValueError):
                pass
            self.done.clear()  # missing or wrong file: no finished chunk can be trusted
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)

    def _progress_matches(self) -> bool:
        try:
            info = json.loads(self.progress_path.read_text())
        except (OSError, ValueError):
            return False
        if not _same(info.get("signature"), self.signature):
            return False
        self.done = {str(k): v for k, v in info.get("done", {}).items()}
        return True

    def _drop_unverified(self) -> None:
        for k in list(self.done):
            rows = self.chunk_rows(int(k))
            want = self.done[k]
            got = {str(a): _crc(self.renders[a][rows]) for a in self.angles}
            got.update({key: _crc(self.smpl[key][rows]) for key in SMPL_FIELDS})
            if got != want:
                del self.done[k]
        self._save_progress()

    def _start_over(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        for p in self.root.glob(f"{self.split}_*"):
            if p.is_file() and p.name.split(f"{self.split}_", 1)[1].startswith(("render_", "smpl", "index", "done")):
                p.unlink()
        self.work.mkdir(parents=True, exist_ok=True)
        self.done = {}

    def _save_progress(self) -> None:
        write_json(self.progress_path, {"signature": self.signature, "done": self.done})


class RenderStore:
    """Read-only access to a finished split: ``get(i, angle)`` and vectorised ``batch``."""

    def __init__(self, root: str | os.PathLike, split: str):
        self.root, self.split = Path(root), split
        marker = self.root / f"{split}_done.json"
        if not marker.is_file():
            raise DataError(f"no finished renders for split {split!r} in {self.root} (missing {marker.name})",
                            "run the meshes stage: `dvc repro` or `python stages/meshes.py --dataset <ds>`")
        sig = json.loads(marker.read_text())["signature"]
        self.angles: list[int] = [int(a) for a in sig["angles"]]
        self.height, self.width = int(sig["height"]), int(sig["width"])
        self.index = pd.read_csv(self.root / f"{split}_index.csv")
        self._arrays = {a: np.load(render_file(self.root, split, a), mmap_mode="r") for a in self.angles}
        self._slot = {a: j for j, a in enumerate(self.angles)}

    def __len__(self) -> int:
        return len(self.index)

    def _check_angle(self, angle: int) -> None:
        if angle not in self._slot:
            raise DataError(f"angle {angle} was not rendered for {self.root}/{self.split} (have {self.angles})",
                            "add it to mesh.angles and rerun the meshes stage")

    def get(self, i: int, angle: int) -> np.ndarray:
        """The H x W uint8 render of row ``i`` at ``angle`` degrees."""
        self._check_angle(int(angle))
        return np.asarray(self._arrays[int(angle)][i])

    def batch(self, rows: Sequence[int] | np.ndarray, angles: int | Sequence[int] | np.ndarray) -> np.ndarray:
        """(B, H, W) uint8 for rows with one angle or one angle per row; one gather per distinct angle."""
        rows = np.asarray(rows, dtype=np.int64)
        ang = np.broadcast_to(np.asarray(angles, dtype=np.int64), rows.shape)
        out = np.empty((len(rows), self.height, self.width), dtype=np.uint8)
        for a in np.unique(ang):
            self._check_angle(int(a))
            sel = ang == a
            order = np.argsort(rows[sel], kind="stable")  # sorted reads are sequential on disk
            picked = np.empty((int(sel.sum()), self.height, self.width), dtype=np.uint8)
            picked[order] = self._arrays[int(a)][rows[sel][order]]
            out[sel] = picked
        return out

    def smpl(self) -> dict[str, np.ndarray]:
        with np.load(self.root / f"{self.split}_smpl.npz", allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def check_aligned(self, paths: Sequence[str]) -> None:
        """Fail loudly (never silently feed the wrong render) when the manifest order differs."""
        mine = [str(p) for p in self.index["path"]]
        theirs = [str(p) for p in paths]
        if len(mine) != len(theirs):
            raise DataError(f"{self.root}/{self.split}_index.csv has {len(mine)} rows, the manifest {len(theirs)}",
                            "rerun the meshes stage after preparing the data")
        bad = next((i for i, (x, y) in enumerate(zip(mine, theirs)) if not y.endswith(x) and not x.endswith(y)),
                   None)
        if bad is not None:
            raise DataError(f"render index row {bad} is {mine[bad]!r} but the manifest has {theirs[bad]!r}",
                            "rerun the meshes stage after preparing the data")

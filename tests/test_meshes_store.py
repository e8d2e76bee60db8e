"""Render storage: memory-mapped arrays, resume after a kill, verification, reader, export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genreid.errors import DataError
from genreid.meshes.export import export_authors_layout, relative_below_image_folder
from genreid.meshes.store import RenderStore, RenderWriter, render_file

ANGLES = [0, 90, 270]
N, H, W, CHUNK = 10, 8, 4, 3


def _chunk_data(writer: RenderWriter, k: int) -> tuple[dict, dict]:
    rows = writer.chunk_rows(k)
    idx = np.arange(rows.start, rows.stop)
    renders = {a: (idx[:, None, None] * 7 + a + np.zeros((1, H, W), int)).astype(np.uint8) for a in ANGLES}
    smpl = {"betas": np.tile(idx[:, None], (1, 10)).astype(np.float32),
            "pose": np.tile(idx[:, None], (1, 72)).astype(np.float32) / 10,
            "cam": np.tile(idx[:, None], (1, 3)).astype(np.float32) + 0.5}
    return renders, smpl


def _writer(root, **sig) -> RenderWriter:
    return RenderWriter(root, "train", N, ANGLES, H, W, CHUNK, {"estimator": "test", **sig})


def _index() -> pd.DataFrame:
    return pd.DataFrame({"row": range(N), "path": [f"images/bounding_box_train/{i:04d}_c1s1_0_00.jpg"
                                                    for i in range(N)], "pid": range(N), "camid": [0] * N})


def _fill(writer: RenderWriter, chunks) -> None:
    for k in chunks:
        writer.write_chunk(k, *_chunk_data(writer, k))


def test_write_finalize_and_read(tmp_path):
    w = _writer(tmp_path)
    assert w.open() == [0, 1, 2, 3]
    _fill(w, [0, 1, 2, 3])
    w.finalize(_index())
    assert not (tmp_path / ".train.partial").exists()
    assert _writer(tmp_path).is_complete()
    store = RenderStore(tmp_path, "train")
    assert len(store) == N and store.angles == ANGLES and (store.height, store.width) == (H, W)
    assert store.get(4, 90).dtype == np.uint8 and store.get(4, 90)[0, 0] == 4 * 7 + 90
    arr = np.load(render_file(tmp_path, "train", 270))
    assert arr.shape == (N, H, W) and arr[9, 1, 1] == (9 * 7 + 270) % 256
    rows, angles = np.array([7, 2, 7, 0]), np.array([0, 270, 90, 270])
    batch = store.batch(rows, angles)
    assert batch.shape == (4, H, W)
    assert [int(b[0, 0]) for b in batch] == [(r * 7 + a) % 256 for r, a in zip(rows, angles)]
    assert np.array_equal(store.batch([3, 1], 0)[:, 0, 0], [21, 7])
    smpl = store.smpl()
    assert smpl["betas"].shape == (N, 10) and smpl["pose"][6, 0] == pytest.approx(0.6)
    with pytest.raises(DataError, match="angle 45 was not rendered"):
        store.get(0, 45)
    store.check_aligned(["/abs/prep/" + p for p in _index()["path"]])
    with pytest.raises(DataError, match="row 0"):
        store.check_aligned(list(reversed(_index()["path"])))


def test_interrupted_run_resumes_only_missing_chunks(tmp_path):
    w = _writer(tmp_path)
    w.open()
    _fill(w, [0, 1])
    del w  # the process dies here: no finalize
    assert not (tmp_path / "train_done.json").exists()
    w2 = _writer(tmp_path)
    assert not w2.is_complete()
    assert w2.open() == [2, 3]
    _fill(w2, [2, 3])
    w2.finalize(_index())
    store = RenderStore(tmp_path, "train")
    assert [int(store.get(i, 0)[0, 0]) for i in range(N)] == [i * 7 for i in range(N)]


def test_corrupt_finished_chunk_is_redone(tmp_path):
    w = _writer(tmp_path)
    w.open()
    _fill(w, [0, 1, 2])
    del w
    mm = np.lib.format.open_memmap(tmp_path / ".train.partial" / "render_90.npy", mode="r+")
    mm[4] = 0  # chunk 1 (rows 3..5) damaged after it was recorded as done
    mm.flush()
    del mm
    assert _writer(tmp_path).open() == [1, 3]


def test_other_signature_starts_over_and_complete_split_is_skipped(tmp_path):
    w = _writer(tmp_path)
    w.open()
    _fill(w, range(4))
    w.finalize(_index())
    assert _writer(tmp_path).is_complete()
    other = _writer(tmp_path, body_model="smpl")
    assert not other.is_complete()
    assert other.open() == [0, 1, 2, 3]
    assert not (tmp_path / "train_done.json").exists() and not render_file(tmp_path, "train", 0).exists()
    # a damaged finished file is not "complete" either
    w = _writer(tmp_path)
    w.open()
    _fill(w, range(4))
    w.finalize(_index())
    arr = np.lib.format.open_memmap(render_file(tmp_path, "train", 0), mode="r+")
    arr[0, 0, 0] = 255
    arr.flush()
    del arr
    assert not _writer(tmp_path).is_complete()


def test_kill_during_finalize_recovers(tmp_path):
    w = _writer(tmp_path)
    w.open()
    _fill(w, range(4))
    w.renders.clear()
    # simulate finalize() killed after moving the first angle's array into place
    (tmp_path / ".train.partial" / "render_0.npy").replace(render_file(tmp_path, "train", 0))
    del w
    w2 = _writer(tmp_path)
    assert not w2.is_complete()
    assert w2.open() == []
    w2.finalize(_index())
    store = RenderStore(tmp_path, "train")
    assert int(store.get(5, 0)[0, 0]) == 35 and int(store.get(5, 270)[0, 0]) == (35 + 270) % 256
    assert json.loads((tmp_path / "train_done.json").read_text())["signature"]["angles"] == ANGLES


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no finished renders for split 'val'.*\n.*meshes"):
        RenderStore(tmp_path, "val")


def test_export_authors_layout(tmp_path):
    w = _writer(tmp_path / "m")
    w.open()
    _fill(w, range(4))
    w.finalize(_index())
    dest = export_authors_layout(tmp_path / "m", ["train"], tmp_path / "authors", size=(16, 8))
    assert sorted(p.name for p in dest.iterdir()) == ["render", "render_270", "render_90"]
    f = dest / "render_90" / "0003_c1s1_0_00.jpg"
    with Image.open(f) as im:
        assert im.size == (8, 16) and im.mode == "L"
        assert abs(int(np.asarray(im)[8, 4]) - (3 * 7 + 90)) <= 3  # JPEG keeps the grey level
    assert relative_below_image_folder(["train/0001/a.jpg", "train/0002/b.jpg"]) == ["0001/a.jpg", "0002/b.jpg"]

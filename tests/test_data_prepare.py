"""The prepare stage: archive -> verified tree, manifests, validation split, all-or-nothing."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from genreid.config.schema import GenreidConfig
from genreid.data.manifest import MANIFEST_COLUMNS, load_prepared
from genreid.data.prepare import PrepareOptions, prepare_dataset
from genreid.data.testing import TreeShape, archive_tree, make_market_tree, make_msmt_tree
from genreid.errors import DataError

KW = dict(val_fraction=0.34, val_seed=0, verify="header", max_bad_images=0, progress=False)


def _options(**kw) -> PrepareOptions:
    return PrepareOptions(**{**KW, **kw})


@pytest.fixture
def market_zip(tmp_path):
    tree = make_market_tree(tmp_path / "src", TreeShape(train_ids=6, test_ids=4, cams_per_id=3, per_cam=2))
    archive = archive_tree(tree.root, tmp_path / "archives" / "Market-1501-v15.09.15.zip")
    return tree, archive


def test_prepare_writes_manifests_summary_and_val(tmp_path, market_zip, capsys):
    tree, archive = market_zip
    out = tmp_path / "prepared" / "market1501"
    summary = prepare_dataset("market1501", {"archive": str(archive)}, out, _options(expected_counts=tree.counts))
    assert "=> market1501" in capsys.readouterr().out
    frames = load_prepared(out)
    assert set(frames) == {"train", "val", "query", "gallery"}
    raw = {s: pd.read_csv(out / f"manifest_{s}.csv") for s in frames}
    for split, df in raw.items():
        assert list(df.columns) == MANIFEST_COLUMNS
        assert (df["split"] == split).all()
        assert all(p.startswith("images/Market-1501-v15.09.15/") for p in df["path"])
    # sha1 is the content hash of the file the manifest points at
    row = frames["gallery"].iloc[3]
    assert hashlib.sha1(Path(row["path"]).read_bytes()).hexdigest() == row["sha1"]
    # val: 2 of 6 train ids (round(0.34*6)), disjoint from train, raw pids, >= 2 cameras each
    val, train = frames["val"], frames["train"]
    assert val["pid"].nunique() == 2 and summary["val"]["raw_pids"] == sorted(val["pid"].unique())
    assert set(val["pid"]) <= {1, 3, 5, 7, 9, 11}
    assert (val.groupby("pid")["camid"].nunique() >= 2).all()
    assert sorted(train["pid"].unique()) == list(range(4))
    assert len(train) + len(val) == tree.counts["train"]["images"]
    assert not set(val["path"]) & set(train["path"])
    # query/gallery untouched: raw pids, distractors kept
    assert (frames["gallery"]["pid"] == 0).sum() == 3
    assert summary["splits"]["val"] == {"ids": 2, "images": len(val), "cameras": val["camid"].nunique()}
    assert json.loads((out / "summary.json").read_text())["splits"] == summary["splits"]
    assert (out / "summary.txt").read_text().startswith("=> market1501")


def test_prepare_is_deterministic_and_seeded(tmp_path, market_zip):
    tree, archive = market_zip
    runs = {(name, seed): tmp_path / name for name, seed in (("a", 0), ("b", 0), ("c", 1), ("d", 2))}
    for (_, seed), d in runs.items():
        prepare_dataset("market1501", str(archive), d, _options(expected_counts="off", val_seed=seed))
    a, b = tmp_path / "a", tmp_path / "b"
    for split in ("train", "val", "query", "gallery"):
        assert (a / f"manifest_{split}.csv").read_bytes() == (b / f"manifest_{split}.csv").read_bytes()
    vals = {tuple(json.loads((d / "summary.json").read_text())["val"]["raw_pids"]) for d in runs.values()}
    assert len(vals) > 1  # another seed carves other identities


def _assert_nothing_left(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert not list(parent.glob(f".{name}*"))


def test_truncated_archive_then_fixed_rerun(tmp_path, market_zip):
    tree, archive = market_zip
    good = archive.read_bytes()
    archive.write_bytes(good[: len(good) // 2])
    out = tmp_path / "prepared" / "market1501"
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        prepare_dataset("market1501", str(archive), out, _options(expected_counts=tree.counts))
    assert str(archive) in str(info.value)
    _assert_nothing_left(out.parent, "market1501")
    archive.write_bytes(good)
    prepare_dataset("market1501", str(archive), out, _options(expected_counts=tree.counts))
    assert (out / "manifest_train.csv").is_file()


def test_truncated_tar_gz_is_named(tmp_path):
    tree = make_msmt_tree(tmp_path / "src")
    archive = archive_tree(tree.root, tmp_path / "MSMT17_V1.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataError, match=r"MSMT17_V1\.tar\.gz.*truncated or corrupt"):
        prepare_dataset("msmt17", str(archive), tmp_path / "out", _options(expected_counts="off"))


def test_every_problem_reported_at_once_and_old_output_kept(tmp_path, market_zip):
    tree, archive = market_zip
    out = tmp_path / "out"
    prepare_dataset("market1501", str(archive), out, _options(expected_counts=tree.counts))
    before = (out / "manifest_gallery.csv").read_bytes()
    # a corrupt JPEG, a renamed file and a missing file, in an unpacked folder
    src = tree.root
    gallery = sorted((src / "bounding_box_test").glob("0*.jpg"))
    gallery[0].write_bytes(b"this is not a jpeg")
    gallery[1].rename(gallery[1].with_name("holiday photo.jpg"))
    gallery[2].unlink()
    with pytest.raises(DataError) as info:
        prepare_dataset("market1501", {"archive": str(src)}, out, _options(expected_counts=tree.counts))
    msg = str(info.value)
    assert f"{gallery[0].name}: cannot decode image" in msg
    assert "holiday photo.jpg: file name does not follow" in msg
    n = tree.counts["gallery"]["images"]
    assert f"split 'gallery': expected {n} images, found {n - 2}" in msg
    assert "nothing was written" in msg
    assert (out / "manifest_gallery.csv").read_bytes() == before  # previous good output untouched
    assert not list(tmp_path.glob(".out.*"))


def test_missing_folder_error(tmp_path, market_zip):
    tree, _ = market_zip
    for f in (tree.root / "query").iterdir():
        f.unlink()
    (tree.root / "query").rmdir()
    with pytest.raises(DataError, match="missing: query"):
        prepare_dataset("market1501", str(tree.root), tmp_path / "out", _options(expected_counts="off"))
    _assert_nothing_left(tmp_path, "out")


def test_truncated_jpeg_needs_full_decode_and_max_bad_images(tmp_path, market_zip):
    tree, _ = market_zip
    victim = sorted((tree.root / "bounding_box_train").glob("0*.jpg"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[:-60])  # header intact, pixels cut off
    out = tmp_path / "out"
    prepare_dataset("market1501", str(tree.root), out, _options(expected_counts="off"))  # header check passes
    with pytest.raises(DataError, match=re.escape(victim.name) + ": cannot decode image"):
        prepare_dataset("market1501", str(tree.root), out, _options(expected_counts="off", verify="full"))
    summary = prepare_dataset("market1501", str(tree.root), out,
                              _options(expected_counts="off", verify="full", max_bad_images=1))
    assert [Path(s["path"]).name for s in summary["skipped_images"]] == [victim.name]
    frames = load_prepared(out)
    assert victim.name not in {Path(p).name for df in frames.values() for p in df["path"]}
    assert not list(out.rglob(victim.name))


def test_leftovers_of_a_killed_run_are_removed(tmp_path, market_zip):
    tree, archive = market_zip
    stale = tmp_path / ".out.abc123.tmp"
    (stale / "images").mkdir(parents=True)
    prepare_dataset("market1501", str(archive), tmp_path / "out", _options(expected_counts="off"))
    assert not stale.exists()


def test_load_prepared_names_the_missing_manifest(tmp_path):
    (tmp_path / "market1501").mkdir()
    with pytest.raises(DataError, match=r"manifest_train\.csv.*\n.*dvc repro prepare@market1501"):
        load_prepared(tmp_path / "market1501")


def test_synthetic_path_calls_the_generator(tmp_path, monkeypatch):
    calls = {}

    def fake_generate(out_dir, settings, *, work_dir, progress):
        calls.update(settings.record())
        assert Path(work_dir).parent == tmp_path and not Path(work_dir).exists()  # survives a failed prepare
        tree = make_market_tree(Path(out_dir).parent, TreeShape(train_ids=4, test_ids=3),
                                dataset_dir=Path(out_dir).name)
        (Path(out_dir) / "summary.json").write_text(json.dumps({"counts": tree.counts}))
        (Path(out_dir) / "ground_truth.npz").write_bytes(b"npz")
        return {}

    module = types.ModuleType("genreid.synth")
    module.generate_synthreid = fake_generate
    module.check_generated = lambda root, summary: {"content_sha256": "0" * 64, "reference": "none"}
    monkeypatch.setitem(sys.modules, "genreid.synth", module)
    out = tmp_path / "synthetic"
    summary = prepare_dataset("synthetic", {"seed": 3, "num_train_ids": 4}, out, _options(expected_counts="canonical"))
    assert calls == GenreidConfig().data.synthetic.model_copy(update={"seed": 3, "num_train_ids": 4}).record()
    assert summary["splits"]["query"]["images"] == 6 and (out / "ground_truth.npz").is_file()
    assert (out / "images" / "bounding_box_train").is_dir()

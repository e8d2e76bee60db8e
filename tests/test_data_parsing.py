"""Parsing dataset trees in the real naming schemes: Market-1501, DukeMTMC-reID, MSMT17 V1/V2."""

from __future__ import annotations

import glob
import os.path as osp
import re
from pathlib import Path

import pytest

from genreid.data import SplitCounts, load_dataset, register_dataset
from genreid.data.base import FileNameDataset
from genreid.data.registry import dataset_names
from genreid.data.testing import TreeShape, make_duke_tree, make_market_tree, make_msmt_tree
from genreid.errors import DataError


def torchreid_market_dir(dir_path: str, relabel: bool) -> set[tuple[str, int, int]]:
    """torchreid's Market1501.process_dir, reimplemented independently as the reference."""
    img_paths = glob.glob(osp.join(dir_path, "*.jpg"))
    pattern = re.compile(r"([-\d]+)_c(\d)")
    pid_container = set()
    for img_path in img_paths:
        pid, _ = map(int, pattern.search(img_path).groups())
        if pid == -1:
            continue
        pid_container.add(pid)
    pid2label = {pid: label for label, pid in enumerate(sorted(pid_container))}
    data = set()
    for img_path in img_paths:
        pid, camid = map(int, pattern.search(img_path).groups())
        if pid == -1:
            continue
        assert 0 <= pid <= 1501 and 1 <= camid <= 6
        camid -= 1
        if relabel:
            pid = pid2label[pid]
        data.add((img_path, pid, camid))
    return data


def as_set(df) -> set[tuple[str, int, int]]:
    return {(p, int(i), int(c)) for p, i, c in zip(df["path"], df["pid"], df["camid"])}


def test_market_matches_torchreid_parser(tmp_path):
    tree = make_market_tree(tmp_path, junk=2, distractors=3)
    splits = load_dataset("market1501", tmp_path, expected_counts=tree.counts)
    for split, folder, relabel in (("train", "bounding_box_train", True), ("query", "query", False),
                                   ("gallery", "bounding_box_test", False)):
        assert as_set(splits[split]) == torchreid_market_dir(str(tree.root / folder), relabel)
    # junk (-1) gone everywhere, distractors (0000) kept in the gallery only
    assert all((df["pid"] >= 0).all() for _, df in splits.items())
    assert (splits.gallery["pid"] == 0).sum() == 3
    assert sorted(splits.train["pid"].unique()) == list(range(6))          # relabelled
    assert sorted(splits.train["raw_pid"].unique()) == [1, 3, 5, 7, 9, 11]  # raw kept alongside
    assert set(splits.query["pid"]) <= set(splits.gallery["pid"])           # query/gallery keep raw pids
    assert splits.val is None and splits.keys() == ["train", "query", "gallery"]
    assert all(Path(p).is_absolute() for p in splits.train["path"])


def test_market_locates_tree_given_the_folder_itself(tmp_path):
    tree = make_market_tree(tmp_path, TreeShape(train_ids=2, test_ids=2))
    a = load_dataset("market1501", tree.root)
    b = load_dataset("market1501", tmp_path)
    assert as_set(a.gallery) == as_set(b.gallery)


def test_duke_names_and_relabel(tmp_path):
    tree = make_duke_tree(tmp_path)
    splits = load_dataset("dukemtmc", tmp_path, expected_counts=tree.counts)
    assert sorted(splits.train["pid"].unique()) == list(range(5))
    assert splits.gallery["camid"].between(0, 7).all()
    name = Path(splits.query["path"][0]).name
    pid, cam = re.match(r"(\d+)_c(\d)_f", name).groups()
    assert splits.query["raw_pid"][0] == int(pid) and splits.query["camid"][0] == int(cam) - 1


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_msmt_list_files_both_layouts(tmp_path, version):
    tree = make_msmt_tree(tmp_path, version=version)
    splits = load_dataset("msmt17", tmp_path, expected_counts=tree.counts)
    # train = list_train + list_val
    n_lines = sum(len((tree.root / f).read_text().splitlines()) for f in ("list_train.txt", "list_val.txt"))
    assert len(splits.train) == n_lines == tree.counts["train"]["images"]
    for _, df in splits.items():
        for path, camid in zip(df["path"], df["camid"]):
            assert int(Path(path).name.split("_")[2]) - 1 == camid
    assert ("mask_train_v2" in splits.train["path"][0]) == (version == "v2")


def test_msmt_missing_listed_image_is_named(tmp_path):
    tree = make_msmt_tree(tmp_path)
    victim = next((tree.root / "test").rglob("*.jpg"))
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(victim.name)):
        load_dataset("msmt17", tmp_path)


def test_missing_folder_names_it(tmp_path):
    tree = make_market_tree(tmp_path, TreeShape(train_ids=2, test_ids=2))
    for f in (tree.root / "query").iterdir():
        f.unlink()
    (tree.root / "query").rmdir()
    with pytest.raises(DataError, match="missing: query"):
        load_dataset("market1501", tmp_path)


def test_renamed_file_and_count_mismatch_reported_together(tmp_path):
    tree = make_market_tree(tmp_path, TreeShape(train_ids=3, test_ids=3))
    victim = sorted((tree.root / "bounding_box_train").glob("0*.jpg"))[0]
    victim.rename(victim.with_name("renamed_by_hand.jpg"))
    with pytest.raises(DataError) as info:
        load_dataset("market1501", tmp_path, expected_counts=tree.counts)
    msg = str(info.value)
    assert "renamed_by_hand.jpg: file name does not follow the market1501 scheme" in msg
    want = tree.counts["train"]["images"]
    assert f"split 'train': expected {want} images, found {want - 1}" in msg


def test_canonical_counts_are_checked(tmp_path):
    make_market_tree(tmp_path, TreeShape(train_ids=2, test_ids=2))
    with pytest.raises(DataError, match="expected 751 ids, found 2"):
        load_dataset("market1501", tmp_path, expected_counts="canonical")


def test_registry_accepts_one_small_class(tmp_path):
    @register_dataset
    class TinyMarketLike(FileNameDataset):
        name = "tiny_test_dataset"
        dataset_dir = "Tiny"
        split_dirs = {"train": "tr", "query": "q", "gallery": "g"}
        pattern = re.compile(r"(?P<pid>\d+)_c(?P<cam>\d)\.jpg")
        num_cameras = 2
        canonical_counts = {"train": SplitCounts(ids=1, images=2)}

    assert "tiny_test_dataset" in dataset_names()
    from PIL import Image

    for folder, names in {"tr": ["0005_c1.jpg", "0005_c2.jpg"], "q": ["0007_c1.jpg"], "g": ["0007_c2.jpg"]}.items():
        (tmp_path / "Tiny" / folder).mkdir(parents=True)
        for n in names:
            Image.new("RGB", (4, 8)).save(tmp_path / "Tiny" / folder / n)
    splits = load_dataset("tiny_test_dataset", tmp_path, expected_counts="canonical")
    assert list(splits.train["pid"]) == [0, 0] and list(splits.train["camid"]) == [0, 1]
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope", tmp_path)

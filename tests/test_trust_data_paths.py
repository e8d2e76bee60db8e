"""Every image path and archive member stays inside the dataset folder."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from genreid.data.archive import unpack
from genreid.data.market1501 import Market1501
from genreid.data.msmt17 import MSMT17
from genreid.data.prepare import PrepareOptions, prepare_dataset
from genreid.data.testing import make_market_tree, make_msmt_tree
from genreid.errors import DataError


def _prepare(source, out):
    return prepare_dataset("msmt17" if "MSMT" in str(source) else "market1501", {"archive": str(source)}, out,
                           PrepareOptions(val_fraction=0.0, expected_counts="off", progress=False))


@pytest.mark.parametrize("line_kind", ["dotdot", "absolute"])
def test_msmt_list_line_outside_the_dataset_is_refused_with_file_and_line(tmp_path, line_kind):
    tree = make_msmt_tree(tmp_path / "src")
    outside = tmp_path / "src" / "0000_000_01_0303morning_0000_0.jpg"  # a real image beside the dataset
    outside.write_bytes(next((tree.root / "train").rglob("*.jpg")).read_bytes())
    rel = "../../0000_000_01_0303morning_0000_0.jpg" if line_kind == "dotdot" else str(outside)
    listing = tree.root / "list_train.txt"
    lines = listing.read_text().splitlines()
    listing.write_text("\n".join([*lines, f"{rel} 0"]) + "\n")
    assert (tree.root / "train" / rel).resolve() == outside.resolve()  # the old parser accepted it
    _, problems = MSMT17(tmp_path / "src").parse()
    assert any(f"list_train.txt:{len(lines) + 1}" in p and "leaves the train/ folder" in p for p in problems)
    with pytest.raises(DataError) as err:
        _prepare(tree.root, tmp_path / "prepared" / "msmt17")
    assert f"list_train.txt:{len(lines) + 1}" in str(err.value) and rel in str(err.value)
    assert not (tmp_path / "prepared" / "msmt17").exists()


def test_an_image_linked_from_outside_the_tree_is_refused(tmp_path):
    tree = make_market_tree(tmp_path / "src")
    victim = tmp_path / "private.jpg"
    first = next((tree.root / "bounding_box_train").glob("0*.jpg"))
    victim.write_bytes(first.read_bytes())
    link = tree.root / "bounding_box_train" / "0001_c1s1_999999_01.jpg"
    link.symlink_to(victim)
    _, problems = Market1501(tree.root).parse()
    assert any(str(link) in p and "outside the dataset folder" in p for p in problems)
    with pytest.raises(DataError, match=r"unsafe member .*0001_c1s1_999999_01\.jpg"):
        _prepare(tree.root, tmp_path / "prepared" / "market1501")


def _tar_with(path, name, *, link_to=None):
    tree = make_market_tree(path.parent / "tree")
    with tarfile.open(path, "w:gz") as tf:
        tf.add(tree.root, arcname=tree.root.name)
        info = tarfile.TarInfo(name)
        if link_to:
            info.type, info.linkname = tarfile.SYMTYPE, link_to
            tf.addfile(info)
        else:
            data = b"owned"
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name, link_to", [("../evil.txt", None), ("/tmp/genreid_evil.txt", None),
                                           ("Market-1501-v15.09.15/escape", "/etc")])
def test_tar_member_blocked_by_the_data_filter_is_an_unsafe_member(tmp_path, name, link_to):
    archive = _tar_with(tmp_path / "in" / "Market-1501-v15.09.15.tar.gz", name, link_to=link_to)
    dest = tmp_path / "out" / "images"
    dest.mkdir(parents=True)
    with pytest.raises(DataError) as err:
        unpack(archive, dest, dataset="market1501")
    text = str(err.value)
    assert f"unsafe member {name}" in text and "truncated or corrupt" not in text
    assert not (tmp_path / "out" / "evil.txt").exists() and not Path("/tmp/genreid_evil.txt").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_zip_member_leaving_the_folder_is_refused_before_anything_is_written(tmp_path, name):
    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Market-1501-v15.09.15/query/x.txt", b"fine")
        zf.writestr(name, b"owned")
    dest = tmp_path / "out" / "images"
    dest.mkdir(parents=True)
    with pytest.raises(DataError, match=f"unsafe member {name}"):
        unpack(archive, dest, dataset="market1501")
    assert os.listdir(dest) == []


def test_folder_source_with_a_link_leading_out_is_refused(tmp_path):
    tree = make_market_tree(tmp_path / "src")
    secret = tmp_path / "home"
    secret.mkdir()
    (secret / "id_rsa").write_text("private")
    (tree.root / "query" / "notes").symlink_to(secret)  # copied along by a plain copytree
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(DataError, match="unsafe member query/notes"):
        unpack(tree.root, dest, dataset="market1501")
    assert not list(dest.rglob("id_rsa"))

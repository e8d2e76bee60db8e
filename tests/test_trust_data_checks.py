"""data: zip bombs, manifests that disagree with their summary or hold a
non-integer pid, and query identities absent from the gallery."""

from __future__ import annotations

import json
import zipfile

import pytest

from genreid.data import extract
from genreid.data.archive import unpack
from genreid.data.manifest import load_prepared, manifest_path
from genreid.data.prepare import PrepareOptions, prepare_dataset
from genreid.data.testing import TreeShape, archive_tree, make_duke_tree, make_market_tree
from genreid.errors import DataError


@pytest.fixture
def prepared(tmp_path):
    tree = make_market_tree(tmp_path / "src", TreeShape(train_ids=4, test_ids=3))
    out = tmp_path / "prepared" / "market1501"
    prepare_dataset("market1501", str(tree.root), out,
                    PrepareOptions(val_fraction=0.0, expected_counts="off", progress=False))
    return out


def test_zip_bomb_is_refused_by_its_ratio(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Market-1501-v15.09.15/query/a.jpg", b"\0" * (8 << 20))  # 8 MiB of zeros: ~1000:1
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(DataError, match=r"unsafe member Market-1501-v15.09.15/query/a.jpg .*zip bomb"):
        unpack(archive, dest, dataset="market1501")
    assert not any(dest.rglob("*.jpg"))


def test_zip_total_size_is_limited(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(4):
            zf.writestr(f"d/{i}.bin", bytes(range(256)) * 4)
    with pytest.raises(DataError, match="would unpack to .* GiB limit"):
        extract.extract_zip(archive, tmp_path, "market1501", max_total=3000)
    assert not (tmp_path / "d").exists()


def test_zip_members_are_size_limited(tmp_path):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("d/a.bin", b"y" * 4096)
    with pytest.raises(DataError, match="more than the 0 MiB limit for one member"):
        extract.extract_zip(archive, tmp_path, "market1501", max_member=1024)


def test_a_normal_zip_still_unpacks(tmp_path):
    tree = make_market_tree(tmp_path / "src")
    archive = archive_tree(tree.root, tmp_path / "Market-1501-v15.09.15.zip")
    out = tmp_path / "prepared"
    summary = prepare_dataset("market1501", {"archive": str(archive)}, out, PrepareOptions(val_fraction=0.0,
                              expected_counts="off", progress=False))
    assert summary["splits"]["train"]["images"] == tree.counts["train"]["images"]


def test_manifest_rows_must_match_the_summary(prepared):
    assert len(load_prepared(prepared)["query"]) > 1
    path = manifest_path(prepared, "query")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # one row lost (a partial copy)
    with pytest.raises(DataError) as err:
        load_prepared(prepared)
    assert f"manifest {path} has {len(lines) - 2} rows" in str(err.value) and "summary.json" in str(err.value)


def test_manifest_pid_that_is_not_an_integer_names_file_line_and_value(prepared):
    path = manifest_path(prepared, "gallery")
    lines = path.read_text().splitlines()
    fields = lines[3].split(",")
    fields[1] = "abc"
    lines[3] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        load_prepared(prepared)
    assert f"manifest {path} line 4: pid 'abc' is not an integer" in str(err.value)


def test_manifest_path_leaving_the_folder_is_refused(prepared):
    path = manifest_path(prepared, "query")
    lines = path.read_text().splitlines()
    lines[1] = "../../secret.jpg" + lines[1][lines[1].index(","):]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 2: path '\.\./\.\./secret\.jpg' leaves the prepared folder"):
        load_prepared(prepared)


def test_query_identities_absent_from_the_gallery_are_counted(tmp_path, capsys):
    tree = make_duke_tree(tmp_path / "src")
    gallery = tree.root / "bounding_box_test"
    lonely = sorted(gallery.glob("0007_*.jpg"))
    for p in lonely:  # pid 7 keeps its query image but loses every gallery image
        p.unlink()
    out = tmp_path / "prepared"
    summary = prepare_dataset("dukemtmc", str(tree.root), out, PrepareOptions(val_fraction=0.0, expected_counts="off",
                              progress=False))
    assert lonely and summary["query_ids_absent_from_gallery"] == {"count": 1, "pids": [7]}
    assert json.loads((out / "summary.json").read_text())["query_ids_absent_from_gallery"]["count"] == 1
    assert "1 query identity absent from the gallery" in capsys.readouterr().out
    full = make_duke_tree(tmp_path / "src2")
    options = PrepareOptions(val_fraction=0.0, expected_counts="off", progress=False)
    assert prepare_dataset("dukemtmc", str(full.root), tmp_path / "p2",
                           options)["query_ids_absent_from_gallery"]["count"] == 0

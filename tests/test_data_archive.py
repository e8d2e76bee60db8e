"""Acquisition: user-supplied archives, download with resume and checksum (loopback server only)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from genreid.data.archive import acquire_archive, download
from genreid.data.status import dataset_status
from genreid.errors import DataError

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB, several download chunks


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with HTTP Range support; ``cut_after`` drops the connection mid-body once."""

    cut_after: int | None = None
    ranges: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        RangeHandler.ranges.append(self.headers.get("Range"))
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if RangeHandler.cut_after is not None:
            self.wfile.write(body[: RangeHandler.cut_after])
            RangeHandler.cut_after = None
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.ranges = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/Market-1501-v15.09.15.zip"
    srv.shutdown()
    srv.server_close()


def test_download_resumes_after_a_dropped_connection(tmp_path, server):
    dest = tmp_path / "archives" / "Market-1501-v15.09.15.zip"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    RangeHandler.cut_after = 300_000
    with pytest.raises(DataError, match="a rerun resumes from there"):
        acquire_archive(dest, dataset="market1501", archive_name=dest.name, url=server, sha256=sha, timeout=5)
    part = dest.with_name(dest.name + ".part")
    assert part.stat().st_size == 300_000 and not dest.exists()
    path = acquire_archive(dest, dataset="market1501", archive_name=dest.name, url=server, sha256=sha, timeout=5)
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert RangeHandler.ranges == [None, "bytes=300000-"]


def test_download_checksum_mismatch_deletes_the_part(tmp_path, server):
    dest = tmp_path / "m.zip"
    with pytest.raises(DataError, match="expected " + "0" * 64):
        download(server, dest, sha256="0" * 64, timeout=5, dataset="market1501")
    assert not dest.exists() and not dest.with_name("m.zip.part").exists()


def test_download_from_file_url(tmp_path):
    src = tmp_path / "mirror.zip"
    src.write_bytes(PAYLOAD[:5000])
    dest = tmp_path / "got.zip"
    download(src.as_uri(), dest, sha256=hashlib.sha256(PAYLOAD[:5000]).hexdigest())
    assert dest.read_bytes() == PAYLOAD[:5000]


def test_unreachable_url_says_where_to_put_the_file(tmp_path):
    dest = tmp_path / "Market-1501-v15.09.15.zip"
    with pytest.raises(DataError) as info:
        acquire_archive(dest, dataset="market1501", archive_name=dest.name, url="http://127.0.0.1:9/x.zip",
                        timeout=2)
    assert "could not download http://127.0.0.1:9/x.zip" in str(info.value)
    assert str(dest.absolute()) in str(info.value)


def test_present_archive_with_wrong_checksum(tmp_path):
    dest = tmp_path / "a.zip"
    dest.write_bytes(b"abc")
    with pytest.raises(DataError, match=f"expected sha256 {'1' * 64}, found {hashlib.sha256(b'abc').hexdigest()}"):
        acquire_archive(dest, dataset="market1501", archive_name="a.zip", sha256="1" * 64)


@pytest.mark.parametrize("name,archive,why", [
    ("dukemtmc", "DukeMTMC-reID.zip", "withdrawn by its owners"),
    ("msmt17", "MSMT17_V1.tar.gz", "only on request"),
])
def test_no_download_datasets_explain_where_and_why(tmp_path, name, archive, why):
    from genreid.data.registry import get_dataset_class

    cls = get_dataset_class(name)
    dest = tmp_path / "archives" / archive
    with pytest.raises(DataError) as info:
        acquire_archive(dest, dataset=name, archive_name=cls.archive_name, url="http://127.0.0.1:9/never",
                        no_download_reason=cls.no_download_reason)
    msg = str(info.value)
    assert why in msg and str(dest.absolute()) in msg and f"data.{name}.archive" in msg
    ok, status = dataset_status(name, prepared_dir=tmp_path / "prepared" / name, source=str(dest))
    assert not ok and why in status and archive in status


def test_market_without_url_or_archive(tmp_path):
    with pytest.raises(DataError, match="data.market1501.url is not set"):
        acquire_archive(tmp_path / "none.zip", dataset="market1501", archive_name="Market-1501-v15.09.15.zip")


def test_dataset_status_states(tmp_path):
    from genreid.data.prepare import PrepareOptions, prepare_dataset
    from genreid.data.testing import TreeShape, make_market_tree

    prepared = tmp_path / "prepared" / "market1501"
    ok, msg = dataset_status("market1501", prepared_dir=prepared, source=str(tmp_path / "x.zip"))
    assert not ok and "x.zip not found" in msg
    ok, msg = dataset_status("market1501", prepared_dir=prepared, source=str(tmp_path / "x.zip"),
                             url="https://mirror.example/m.zip")
    assert ok and "downloads it from https://mirror.example/m.zip" in msg
    tree = make_market_tree(tmp_path / "src", TreeShape(train_ids=3, test_ids=2))
    ok, msg = dataset_status("market1501", prepared_dir=prepared, source=str(tree.root))
    assert ok and "not prepared yet" in msg
    prepare_dataset("market1501", str(tree.root), prepared,
                    PrepareOptions(val_fraction=0.0, val_seed=0, verify="header", expected_counts="off",
                                   max_bad_images=0, progress=False))
    ok, msg = dataset_status("market1501", prepared_dir=prepared, source=str(tree.root))
    assert ok and "train 3 ids/18 images" in msg
    Path(prepared / "manifest_val.csv").unlink()
    ok, msg = dataset_status("market1501", prepared_dir=prepared, source=None)
    assert not ok and "manifest_val.csv" in msg
    ok, msg = dataset_status("synthetic", prepared_dir=tmp_path / "nothing")
    assert ok and "dvc repro prepare@synthetic" in msg

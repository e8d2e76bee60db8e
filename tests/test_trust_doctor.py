"""doctor: archive signature and size, the ImageNet file the encoder really
loads, and a broken recipe reported without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from genreid.data import archive as archive_mod
from genreid.data.testing import archive_tree, make_market_tree
from genreid.doctor import FAIL, OK, WARN, _imagenet_check, collect
from genreid.models.id_encoder import imagenet_weights_path

HTML_404 = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"


def _params(tmp_path, archive, **data):
    tree = {"datasets": ["market1501"], "model": {"pretrained": "none"}, "mesh": {"allow_procedural_body": True},
            "data": {"root": str(tmp_path / "data"), "market1501": {"archive": str(archive)}, **data}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def _dataset_check(params):
    return {c.name: c for c in collect(params)}["dataset market1501"]


def test_an_html_error_page_is_not_an_archive(tmp_path):
    page = tmp_path / "sources" / "Market-1501-v15.09.15.zip"
    page.parent.mkdir()
    page.write_bytes(HTML_404)
    check = _dataset_check(_params(tmp_path, page))
    assert check.status == FAIL and "is not an archive: an HTML page" in check.detail and str(page) in check.detail


def test_archive_smaller_than_the_published_dataset_fails_unless_counts_are_off(tmp_path):
    tree = make_market_tree(tmp_path / "src")
    small = archive_tree(tree.root, tmp_path / "sources" / "Market-1501-v15.09.15.zip")
    check = _dataset_check(_params(tmp_path, small))
    assert check.status == FAIL and "the complete archive is at least 31 MiB" in check.detail
    check = _dataset_check(_params(tmp_path, small, expected_counts="off"))
    assert check.status == OK and "(zip," in check.detail


def test_truncated_zip_is_named(tmp_path):
    tree = make_market_tree(tmp_path / "src")
    full = archive_tree(tree.root, tmp_path / "a.zip")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert "no central directory: it is truncated" in archive_mod.archive_problem(cut)


@pytest.mark.parametrize("backbone, v1, v2", [("resnet50", "resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"),
                                              ("resnet18", "resnet18-f37072fd.pth", None)])
def test_doctor_checks_the_imagenet_file_the_encoder_loads(tmp_path, monkeypatch, backbone, v1, v2):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = imagenet_weights_path(backbone)
    assert path.name == v1
    path.parent.mkdir(parents=True)
    if v2:  # the V2 file alone (what the old doctor looked for) does not satisfy the encoder
        (path.parent / v2).write_bytes(b"\0" * (2 << 20))
    check = _imagenet_check(backbone)
    assert check.status == WARN and v1 in check.detail and str(path) in check.fix
    path.write_bytes(b"\0" * (2 << 20))  # right name, wrong content (a failed download)
    check = _imagenet_check(backbone)
    assert check.status == FAIL and "damaged" in check.detail
    prefix = v1.rsplit("-", 1)[1].split(".")[0]
    monkeypatch.setattr(archive_mod, "file_sha256", lambda p: prefix + "0" * 56)
    assert _imagenet_check(backbone).status == OK


def test_base_that_is_not_a_file_name_is_reported_by_doctor_without_traceback(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("_base_: 5\nseed: 2\n")
    checks = {c.name: c for c in collect(str(recipe))}
    assert checks["params"].status == FAIL and "_base_ must be a recipe file name" in checks["params"].detail
    proc = subprocess.run([sys.executable, "-m", "genreid.cli", "doctor", "--params", str(recipe)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout

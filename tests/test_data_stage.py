"""``stages/prepare.py --dataset <ds>``: params in, data/prepared/<ds> out, exit 2 on a user error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from genreid.data.manifest import load_prepared
from genreid.data.testing import TreeShape, archive_tree, make_market_tree

STAGE = Path(__file__).resolve().parents[1] / "stages" / "prepare.py"


def _stage():
    spec = importlib.util.spec_from_file_location("prepare_stage", STAGE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _params(tmp_path: Path, archive: Path) -> Path:
    params = {"datasets": ["market1501"], "mesh": {"allow_procedural_body": True},
              "data": {"root": str(tmp_path / "data"), "height": 64, "width": 32, "val_fraction": 0.25,
                       "expected_counts": "off", "market1501": {"archive": str(archive)}}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_stage_prepares_and_records_config(tmp_path):
    tree = make_market_tree(tmp_path / "src", TreeShape(train_ids=4, test_ids=2))
    archive = archive_tree(tree.root, tmp_path / "Market-1501-v15.09.15.zip")
    params = _params(tmp_path, archive)
    assert _stage().main(["--params", str(params), "--dataset", "market1501"]) == 0
    out = tmp_path / "data" / "prepared" / "market1501"
    frames = load_prepared(out)
    assert frames["val"]["pid"].nunique() == 1 and frames["train"]["pid"].nunique() == 3
    assert yaml.safe_load((out / "config.resolved.yaml").read_text())["data"]["val_fraction"] == 0.25


def test_stage_missing_archive_exits_2_with_the_fix(tmp_path, capsys):
    params = _params(tmp_path, tmp_path / "absent" / "Market-1501-v15.09.15.zip")
    assert _stage().main(["--params", str(params), "--dataset", "market1501"]) == 2
    err = capsys.readouterr().err
    assert "Market-1501-v15.09.15.zip not found" in err and "fix: place Market-1501-v15.09.15.zip" in err
    assert not (tmp_path / "data" / "prepared" / "market1501").exists()

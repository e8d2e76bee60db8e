import subprocess
import sys
from pathlib import Path

import yaml

from genreid.doctor import FAIL, INFO, collect

ROOT = Path(__file__).resolve().parents[1]


def _params(tmp_path, **over):
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    tree["data"]["root"] = str(tmp_path / "data")
    for dotted, value in over.items():
        node = tree
        *head, last = dotted.split(".")
        for k in head:
            node = node[k]
        node[last] = value
    tree.pop("uda")  # derived from datasets / warmup.source_dataset: recomputed when absent
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(tree))
    return str(p)


def _by_name(checks):
    return {c.name: c for c in checks}


def test_default_has_no_blocking_problem_and_names_optional_pieces(tmp_path):
    checks = _by_name(collect(_params(tmp_path)))
    assert checks["pytorch3d ops"].status == "ok"
    for name in ("dataset market1501", "dataset dukemtmc", "dataset msmt17", "HMR weights", "SMPL mean params"):
        assert checks[name].status == INFO, name
        assert checks[name].fix, f"{name} has no fix line"
    assert "withdrawn" in checks["dataset dukemtmc"].fix


def test_missing_configured_dataset_and_smpl_are_blocking(tmp_path):
    params = _params(tmp_path, datasets=["market1501"], **{"mesh.body_model": str(tmp_path / "SMPL.pkl"),
                                                           "mesh.estimator": "hmr"})
    checks = _by_name(collect(params))
    assert checks["dataset market1501"].status == FAIL
    assert checks["SMPL model"].status == FAIL and "SMPL_NEUTRAL.pkl" in checks["SMPL model"].fix
    assert checks["HMR weights"].status == FAIL
    proc = subprocess.run([sys.executable, "-m", "genreid.cli", "doctor", "--params", params],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "blocking problem" in proc.stdout


def test_invalid_params_is_blocking(tmp_path):
    params = _params(tmp_path, **{"warmup.lr": -1.0})
    checks = _by_name(collect(params))
    assert checks["params"].status == FAIL

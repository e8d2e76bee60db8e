"""The params tree fails fast with the dotted key, the bad value and what is allowed."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genreid.config import load_config, resolve_recipe
from genreid.config.loader import deep_merge, load_raw
from genreid.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path, tree, name="params.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(tree))
    return p


def test_repo_params_validate():
    cfg = load_config(ROOT / "params.yaml")
    assert cfg.datasets == ["synthetic"]
    assert cfg.data.height == 2 * cfg.data.width


@pytest.mark.parametrize("tree, key, fragment", [
    ({"train": {"optim": {"lr_id": -1}}}, "train.optim.lr_id", "greater than 0"),
    ({"datasets": ["market"]}, "datasets.0", "'market1501'"),
    ({"data": {"name": "market"}}, "data.name", "unknown key"),
    ({"warmup": {"epochs": "ten"}}, "warmup.epochs", "valid integer"),
    ({"data": {"height": 100, "width": 32}}, "data", "aspect 2:1"),
    ({"mesh": {"angles": [45, 90]}}, "mesh.angles", "start with 0"),
    ({"bogus": 1}, "bogus", "unknown key"),
    ({"mesh": {"estimator": "oracle", "body_model": "smpl/SMPL_NEUTRAL.pkl"}}, "mesh.body_model",
     "must equal data.synthetic.body_model ('procedural')"),
])
def test_invalid_values_name_the_key(tmp_path, tree, key, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, tree))
    msg = str(info.value)
    assert key in msg and fragment in msg
    assert str(tmp_path / "params.yaml") in msg


def test_unknown_key_lists_allowed_keys(tmp_path):
    with pytest.raises(ConfigError, match="allowed keys here: .*epochs"):
        load_config(_write(tmp_path, {"warmup": {"epoch": 3}}))


def test_base_chain_and_cycle(tmp_path):
    _write(tmp_path, {"seed": 3, "warmup": {"epochs": 7, "lr": 0.1}}, "a.yaml")
    b = _write(tmp_path, {"_base_": "a.yaml", "warmup": {"epochs": 9}}, "b.yaml")
    raw = load_raw(b)
    assert raw == {"seed": 3, "warmup": {"epochs": 9, "lr": 0.1}}
    _write(tmp_path, {"_base_": "d.yaml"}, "c.yaml")
    _write(tmp_path, {"_base_": "c.yaml"}, "d.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        load_raw(tmp_path / "c.yaml")


def test_deep_merge_replaces_lists():
    assert deep_merge({"a": {"b": [1, 2], "c": 1}}, {"a": {"b": [3]}}) == {"a": {"b": [3], "c": 1}}


def test_params_yaml_is_the_resolved_default_recipe():
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert committed == resolve_recipe(ROOT / "params" / "synthetic_cpu.yaml"), \
        "params.yaml drifted from params/synthetic_cpu.yaml: run `genreid recipe apply params/synthetic_cpu.yaml`"


def test_stage_fails_within_seconds_on_bad_params(tmp_path):
    """A stage entry point validates params before any work and exits 2 naming the key."""
    bad = _write(tmp_path, {"train": {"optim": {"lr_id": -1}}})
    code = ("import sys; from genreid.stage import run_stage, stage_parser;"
            "sys.exit(run_stage(lambda c, a: None, stage_parser('t'), sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "--params", str(bad), "--dataset", "synthetic"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "train.optim.lr_id" in proc.stderr and "Traceback" not in proc.stderr

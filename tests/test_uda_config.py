"""UDA params: the derived uda.* foreach lists, the source/target rules, the source recipe's checks, and
the stage entry points' UDA errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from genreid.config import load_config, resolve_recipe
from genreid.config.loader import dump_yaml, validate
from genreid.config.schema import GenreidConfig
from genreid.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "params" / "uda" / "synthetic_to_synthetic_b.yaml"


def test_default_params_have_empty_uda_lists():
    cfg = load_config(ROOT / "params.yaml")
    assert cfg.warmup.source_dataset is None
    assert cfg.uda.model_dump() == {"sources": [], "targets": {}, "unsupervised": ["synthetic"], "imported": {}}
    assert GenreidConfig().uda.sources == []


def test_a_uda_recipe_derives_its_stage_lists():
    tree = resolve_recipe(DEMO)
    assert tree["uda"] == {"sources": ["synthetic"], "targets": {"synthetic_b": "synthetic"}, "unsupervised": [],
                           "imported": {}}
    assert tree["datasets"] == ["synthetic_b"] and tree["data"]["synthetic_b"]["domain"] == "b"
    assert tree["data"]["synthetic"]["seed"] == 0 and "domain" not in tree["data"]["synthetic"]
    assert resolve_recipe(ROOT / "params" / "uda" / "market1501_to_dukemtmc.yaml")["uda"]["targets"] == {
        "dukemtmc": "market1501"}


def test_stale_uda_lists_name_the_fix():
    tree = resolve_recipe(ROOT / "params" / "synthetic_cpu.yaml")
    tree["datasets"], tree["warmup"]["source_dataset"] = ["synthetic_b"], "synthetic"  # as `dvc exp run -S` would
    with pytest.raises(ConfigError, match="genreid recipe apply"):
        validate(tree)


@pytest.mark.parametrize("edit, match", [
    (lambda t: t["warmup"].update(source_dataset="synthetic"), "also listed in datasets"),
    (lambda t: t["eval"].update(methods=["untrained", "direct"]), "warmup.source_dataset is null"),
    (lambda t: t["source"].update(batch_size=30, num_instances=4), "source.batch_size 30"),
    (lambda t: t["source"].update(milestones=[70, 40]), "strictly increasing"),
])
def test_uda_rules(edit, match):
    tree = resolve_recipe(ROOT / "params" / "synthetic_cpu.yaml")
    del tree["uda"]
    edit(tree)
    with pytest.raises(ConfigError, match=match):
        validate(tree)


def _stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stages_refuse_uda_misuse_with_a_fix(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(dump_yaml(resolve_recipe(DEMO)))
    assert _stage("evaluate").main(["--params", str(params), "--dataset", "synthetic_b", "--method", "direct"]) == 2
    assert "needs --encoder" in capsys.readouterr().err
    assert _stage("source").main(["--params", str(params), "--dataset", "synthetic_b"]) == 2
    assert "is not the source" in capsys.readouterr().err
    # the source is accepted as a stage's dataset (it is not in `datasets`); its prepared data is missing here
    assert _stage("warmup").main(["--params", str(params), "--dataset", "synthetic_b"]) == 2
    assert "dvc repro source@synthetic" in capsys.readouterr().err
    assert _stage("source").main(["--params", str(params), "--dataset", "market1501"]) == 2
    assert "not listed" in capsys.readouterr().err


def test_uda_keys_leave_the_default_settings_fingerprint_alone():
    """Seeds archived before the UDA keys existed keep averaging with new default runs."""
    from genreid.report.seeds import config_fingerprint

    now = resolve_recipe(ROOT / "params" / "synthetic_cpu.yaml")
    before = {k: v for k, v in now.items() if k not in ("source", "uda")}
    before["data"] = {k: v for k, v in now["data"].items() if k != "synthetic_b"}
    assert config_fingerprint(now) == config_fingerprint(before)
    demo = resolve_recipe(DEMO)
    assert config_fingerprint(demo) != config_fingerprint(now)
    changed = dict(now, source=dict(now["source"], margin=0.5))
    assert config_fingerprint(changed) != config_fingerprint(now)

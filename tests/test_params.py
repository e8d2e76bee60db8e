"""Recipes: params.yaml is the resolved default, every recipe validates and differs only where it says,
and params/README.md is exactly what the schema generates."""

from pathlib import Path

import pytest
import yaml

from genreid.config import load_config, resolve_recipe
from genreid.config.deviations import DEVIATIONS, kept, matches, unknown_keys
from genreid.config.docs import iter_fields, recipe_summary, render
from genreid.config.loader import load_raw
from genreid.config.schema import GenreidConfig

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params"
RECIPES = sorted(PARAMS.rglob("*.yaml"))


def test_params_yaml_is_synthetic_cpu_resolved():
    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == resolve_recipe(PARAMS / "synthetic_cpu.yaml"), \
        "params.yaml drifted: run `.venv/bin/genreid recipe apply params/synthetic_cpu.yaml`"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.relative_to(PARAMS).as_posix())
def test_every_recipe_validates_and_says_what_it_is(recipe):
    cfg = load_config(recipe)
    base, description = recipe_summary(recipe)
    assert len(description) > 20, f"{recipe} needs a header comment saying what it sets"
    if recipe.name != "base.yaml":
        assert base, f"{recipe} must start from a _base_ recipe"
    assert cfg.data.height == 2 * cfg.data.width


def test_paper_recipes_keep_paper_values():
    market = load_config(PARAMS / "market1501.yaml")
    assert market.datasets == ["market1501"] and market.data.height == 256 and market.model.backbone == "resnet50"
    assert market.train.methods == ["gcl", "gcl_plus"] and market.warmup.source_dataset is None
    msmt = load_config(PARAMS / "msmt17.yaml").train
    assert msmt.gcl.cluster.eps_rule == "rho" and msmt.gcl.cluster.rho == 0.0012 and msmt.gcl_plus.cluster.eps == 0.55
    assert load_config(PARAMS / "gcl" / "dukemtmc.yaml").train.methods == ["gcl"]
    uda = load_config(PARAMS / "uda" / "market1501_to_dukemtmc.yaml")
    assert uda.datasets == ["dukemtmc"] and uda.warmup.source_dataset == "market1501"


@pytest.mark.parametrize("name, dotted, value", [
    ("mixup_pixel", "train.gcl_plus.mixup", "mixup"),
    ("mixup_feature", "train.gcl_plus.mixup", "f_mixup"),
    ("no_dmixup", "train.gcl_plus.mixup", "none"),
    ("no_prototype", "train.gcl_plus.id_w", 0.0),
    ("angles_quarter", "train.angles", [90, 180, 270]),
    ("authors_code_quirks", "train.term3_negatives", "f_nv"),
])
def test_ablations_change_one_thing_against_market(name, dotted, value):
    """Each ablation differs from the Market-1501 recipe only in its own keys and the method list."""
    market = _flat(resolve_recipe(PARAMS / "market1501.yaml"))
    ablation = _flat(resolve_recipe(PARAMS / "ablations" / f"{name}.yaml"))
    assert ablation[dotted] == value
    changed = {k for k in market if market[k] != ablation[k]}
    own = set(_flat(load_raw(PARAMS / "ablations" / f"{name}.yaml")))
    assert dotted in changed and changed <= own | {"train.methods"}


def test_authors_code_quirks_recipe_restores_the_authors_prototype_loss_and_lr():
    cfg = load_config(PARAMS / "ablations" / "authors_code_quirks.yaml")
    assert cfg.train.gcl_plus.proto_normalise is False and cfg.train.gcl_plus.proto_temperature == 1.0
    assert cfg.train.positive_includes_self is True and cfg.train.term3_negatives == "f_nv"
    assert cfg.train.stage3_lr_g == 1e-5 and cfg.train.gd_lr_step is False
    assert cfg.train.step_epoch == 10 and cfg.train.lr_gamma == 0.1  # E_id still steps at epoch 10
    assert 315 not in cfg.train.angles and 315 not in cfg.pretrain.angles


def test_deviation_table_names_only_schema_keys():
    assert unknown_keys() == [], "a key in genreid/config/deviations.py is not in the schema: update the table"
    topics = [d.topic for d in DEVIATIONS]
    assert len(topics) == len(set(topics))


def test_authors_code_recipe_restores_every_row_of_the_deviation_table():
    """params/ablations/authors_code.yaml sets every switchable difference to the authors' value, and sets
    nothing the table does not name (besides what its Market-1501 base sets)."""
    tree = resolve_recipe(PARAMS / "ablations" / "authors_code.yaml")
    assert [d.topic for d in kept(tree)] == []
    flat = _flat(tree)
    for d in DEVIATIONS:
        for key, value in d.authors.items():
            assert matches(value, flat[key]), (d.topic, key, flat[key])
    named = {k for d in DEVIATIONS for k in d.authors}
    assert set(_flat(load_raw(PARAMS / "ablations" / "authors_code.yaml"))) - set(
        _flat(load_raw(PARAMS / "market1501.yaml"))) <= named
    assert set(load_config(PARAMS / "ablations" / "authors_code.yaml").train.methods) == {"gcl", "gcl_plus"}


def test_other_recipes_keep_the_differences_they_choose():
    market = {d.topic for d in kept(resolve_recipe(PARAMS / "market1501.yaml"))}
    assert {"stage-1 method", "model selection", "novel-view angles"} <= market
    assert "body model" not in market  # the paper recipes need the SMPL model file
    assert "decoder layer norm" not in market and "appearance code to AdaIN MLPs" not in market
    quirks = {d.topic for d in kept(resolve_recipe(PARAMS / "ablations" / "authors_code_quirks.yaml"))}
    assert not quirks & {"prototype loss: normalisation and temperature", "stage-3 G/D learning rate",
                         "anchor as its own positive", "negatives of the third memory term", "novel-view angles"}
    cpu = {d.topic for d in kept(resolve_recipe(PARAMS / "synthetic_cpu.yaml"))}
    assert {"appearance-code standardisation", "reconstruction warm start", "AdaIN scale offset"} <= cpu


def test_recipe_deviations_command_lists_what_a_recipe_keeps(capsys):
    from genreid.cli import main

    assert main(["recipe", "deviations", str(PARAMS / "ablations" / "authors_code.yaml")]) == 0
    assert " keeps 0 of " in capsys.readouterr().out
    assert main(["recipe", "deviations", str(PARAMS / "market1501.yaml")]) == 0
    out = capsys.readouterr().out
    assert "warmup.import_encoder=None" in out and "train.term3_negatives='f'" in out


def test_tiny_profile_is_small():
    tiny = load_config(PARAMS / "tiny.yaml")
    assert (tiny.data.height, tiny.data.width) == (32, 16)
    assert tiny.warmup.epochs == tiny.pretrain.epochs == tiny.train.epochs == 1
    assert tiny.data.synthetic.num_train_ids <= 16


def test_params_readme_is_generated():
    committed = (PARAMS / "README.md").read_text()
    assert committed == render(), "params/README.md is out of date: run `.venv/bin/python -m genreid.config.docs`"
    for key, _field, _model in iter_fields(GenreidConfig):
        assert f"| `{key}` |" in committed or f"## `{key}`" in committed, f"{key} missing from params/README.md"


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out

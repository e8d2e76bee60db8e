"""The dose-response plan (scripts/dose_response.py): the ten point recipes change only what their
names say, the control arms run once per stage-3 length, the run order keeps stage 2 between points of
one budget, and the stage-2 time model counts the iterations of each budget."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("dose_response_script", ROOT / "scripts" / "dose_response.py")
dose = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = dose  # dataclasses look their module up while the script loads
SPEC.loader.exec_module(dose)

GCL_ONLY = {"train": {"methods": ["gcl", "gcl_plus"]},
            "eval": {"methods": ["untrained", "baseline", "gcl", "gcl_plus"]}}
E12 = {"train": {"epochs": 12, "step_epoch": 9}}


def _merge(*trees: dict) -> dict:
    out: dict = {}
    for tree in trees:
        out = dose.deep_merge(out, tree)
    return out


@pytest.mark.parametrize("name, expected", [
    ("default_e4", {}),
    ("default_e12", E12),
    ("recon_only_e4", _merge({"pretrain": {"recon_warmup_iters": 1000000}}, GCL_ONLY)),
    ("authors_e12", _merge({"pretrain": {"recon_warmup_iters": 0}}, GCL_ONLY, E12)),
    ("long_e4", _merge({"pretrain": {"epochs": 54}}, GCL_ONLY)),
    ("detach_e12", _merge({"train": {"detach_appearance_for_generator": True}}, GCL_ONLY, E12)),
])
def test_each_point_changes_only_what_its_name_says(name, expected):
    assert dose.point_overrides(dose.RECIPES / f"{name}.yaml") == expected


def test_points_run_budget_by_budget_and_the_controls_once_per_stage3_length():
    points = dose.discover_points(tiny=False)
    assert [p.name for p in points] == ["default_e4", "default_e12", "detach_e4", "detach_e12", "recon_only_e4",
                                        "recon_only_e12", "authors_e4", "authors_e12", "long_e4", "long_e12"]
    controls = {"control_none", "control_aug", "oracle_views"}
    assert [p.name for p in points if controls & set(p.methods)] == ["default_e4", "default_e12"]
    assert all(set(p.methods) >= {"gcl", "gcl_plus"} for p in points)
    assert {p.stage3_epochs for p in points} == {4, 12}
    # default and detach share stage 2, so the clone keeps it between them
    assert points[0].params["pretrain"] == points[3].params["pretrain"]


def test_stage2_time_counts_reconstruction_and_full_iterations():
    t = dose.DEFAULT_TIMES
    by_name = {p.name: p for p in dose.discover_points(tiny=False)}
    assert dose.stage2_seconds(by_name["default_e4"].params, t) == pytest.approx(988 * 0.12 + 38 * 0.84)
    assert dose.stage2_seconds(by_name["recon_only_e4"].params, t) == pytest.approx(1026 * 0.12)
    assert dose.stage2_seconds(by_name["authors_e4"].params, t) == pytest.approx(1026 * 0.84)
    assert dose.stage2_seconds(by_name["long_e4"].params, t) == pytest.approx(988 * 0.12 + 1064 * 0.84)
    fresh, what = dose.point_seconds(by_name["default_e4"], None, t)
    assert what.startswith("stage 1 and data + stage 2") and fresh > dose.point_seconds(by_name["default_e4"],
                                                                                        by_name["default_e4"], t)[0]


def test_tiny_points_keep_tiny_sizes_with_the_point_changes(tmp_path):
    points = {p.name: p for p in dose.discover_points(tiny=True, names=["detach_e4", "long_e12"])}
    detach = points["detach_e4"].params
    assert detach["data"]["height"] == 32 and detach["train"]["epochs"] == 1  # tiny.yaml's
    assert detach["train"]["detach_appearance_for_generator"] is True and detach["train"]["methods"] == ["gcl",
                                                                                                         "gcl_plus"]
    assert points["long_e12"].params["pretrain"]["epochs"] == 54 and points["long_e12"].stage3_epochs == 12
    with pytest.raises(dose.DoseError, match="unknown point"):
        dose.discover_points(tiny=True, names=["nope_e4"])


def test_set_seed_rewrites_the_one_seed_line(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("# Resolved from x\nseed: 1\ntrain:\n  seed_like: 3\n")
    dose.set_seed(params, 7)
    assert params.read_text() == "# Resolved from x\nseed: 7\ntrain:\n  seed_like: 3\n"
    params.write_text("train: {}\n")
    with pytest.raises(dose.DoseError, match="found 0"):
        dose.set_seed(params, 2)

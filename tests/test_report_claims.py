"""Paired comparisons with the control arms and the claims' verdicts (95 % t-interval, n-1 dof), the
results-table order, and the procedural-body mark, on hand-made collected seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genreid.report.claims import (
    HOLDS,
    REFUTED,
    UNRESOLVED,
    claim_lines,
    comparison_pairs,
    comparisons,
    method_rank,
    verdict,
)
from genreid.report.collect import collect_dataset
from genreid.report.report import PROCEDURAL_BODY, build_report
from genreid.report.seeds import SeedRun
from genreid.report.tables import build_row
from genreid.report.targets import load_targets

ORDER = ["untrained", "baseline", "control_none", "control_aug", "gcl", "gcl_plus"]
SEEDS = [1, 2, 3, 4, 5]
# mAP per seed; the seed shifts every method alike (shared warm-up), the noise below is per method
BASE = {1: 30.0, 2: 32.0, 3: 28.0, 4: 31.0, 5: 29.0}
OFFSETS = {
    "untrained": [-28.0, -29.0, -27.5, -28.5, -28.0],
    "baseline": [0.0] * 5,
    "control_none": [1.0, 1.5, 0.8, 1.2, 1.1],     # memory training alone: +1.1, tight -> holds
    "control_aug": [2.0, 1.0, 3.0, 0.5, 2.5],      # vs control_none: +0.7 [-0.9, +2.2] -> straddles zero
    "gcl": [4.0, 4.5, 3.8, 4.2, 4.1],              # vs control_aug: +2.3 [+0.8, +3.9]; vs control_none: +3.0
    "gcl_plus": [3.0, 3.6, 2.9, 3.1, 3.0],         # vs gcl: about -1.0, tight -> refuted
    "direct": [-5.0, -6.0, -4.0, -5.5, -4.5],      # UDA: the warm-up beats direct transfer by 5.0 -> holds
}


def _row(method: str, ds: str = "synthetic"):
    runs = [SeedRun(s, {"mAP": BASE[s] + OFFSETS[method][i], "R1": BASE[s] + 20 + OFFSETS[method][i]},
                    Path(f"seed_{s}.json")) for i, s in enumerate(SEEDS)]
    return build_row(ds, method, "unsupervised", runs, {}, 1.0)


def test_verdict_from_the_interval():
    assert verdict((0.1, 2.0)) == HOLDS
    assert verdict((-3.0, -0.01)) == REFUTED
    assert verdict((-1.0, 2.0)) == UNRESOLVED
    assert verdict((0.0, 2.0)) == UNRESOLVED  # touching zero is not excluding it
    assert verdict(None) == UNRESOLVED  # one seed: no interval


def test_comparisons_and_claims_on_five_seeds():
    rows = [_row(m) for m in ORDER]
    found = {(c.method, c.reference): c for c in comparisons(rows)}
    expected = [(m, "baseline") for m in ("control_none", "control_aug", "gcl", "gcl_plus")] + [
        ("gcl", "control_aug"), ("gcl", "control_none"), ("gcl_plus", "control_aug"), ("gcl_plus", "gcl"),
        ("control_aug", "control_none")]
    oracle = [("oracle_views", "control_aug"), ("oracle_views", "control_none"), ("gcl", "oracle_views")]
    assert list(found) == expected  # no oracle_views run here: none of its comparisons
    assert sorted(comparison_pairs()) == sorted(expected + [("oracle_views", "baseline"), ("baseline", "direct")]
                                                + oracle)
    none = found[("control_none", "baseline")].gains["mAP"]
    assert none.stat.n == 5 and none.stat.mean == pytest.approx(1.12) and none.wins == 5
    lo, hi = none.ci95  # t(0.975, 4) = 2.776; std of [1, 1.5, .8, 1.2, 1.1] = 0.2588
    assert (lo, hi) == (pytest.approx(1.12 - 2.776 * 0.2588 / 5 ** 0.5, abs=2e-3),
                        pytest.approx(1.12 + 2.776 * 0.2588 / 5 ** 0.5, abs=2e-3))
    assert found[("control_none", "baseline")].verdict == HOLDS
    assert found[("gcl_plus", "gcl")].gains["mAP"].stat.mean == pytest.approx(-1.0)
    assert found[("gcl_plus", "gcl")].verdict == REFUTED
    assert found[("control_aug", "control_none")].verdict == UNRESOLVED
    assert found[("gcl", "control_none")].verdict == HOLDS
    text = "\n".join(claim_lines(list(found.values())))
    assert "- synthetic: GCL+'s identity variance adds to GCL (GCL+ vs GCL): **refuted** (mAP -1.0 [" in text
    assert "Stage-3 memory training alone helps (control_none vs baseline): **holds** (mAP +1.1 [+0.8, +1.4], " \
           "n = 5)" in text
    assert "Generated views help beyond more training (GCL vs control_none): **holds**" in text
    assert "(control_aug vs control_none): **not resolved**" in text


def test_only_pairs_whose_methods_both_ran_are_shown():
    rows = [_row(m) for m in ("untrained", "baseline", "gcl", "gcl_plus")]
    pairs = [(c.method, c.reference) for c in comparisons(rows)]
    assert pairs == [("gcl", "baseline"), ("gcl_plus", "baseline"), ("gcl_plus", "gcl")]
    assert comparisons([_row("baseline")]) == []


def _fake(results: Path, ds: str, seed: int, methods: list[str]) -> None:
    for method in methods:
        folder = results / ds / method
        folder.mkdir(parents=True, exist_ok=True)
        m = BASE[seed] + OFFSETS[method][seed - 1]
        (folder / "metrics.json").write_text(json.dumps({"mAP": m, "R1": m + 20, "provenance": {"seed": seed}}))


def test_report_orders_rows_and_writes_claims_from_archived_seeds(tmp_path):
    results = tmp_path / "results"
    shuffled = ["gcl_plus", "control_aug", "untrained", "gcl", "baseline", "control_none"]
    for seed in SEEDS:  # five runs of the same settings, filed one after another as dvc repro would
        _fake(results, "synthetic", seed, shuffled)
        collect_dataset(results, "synthetic", shuffled, "unsupervised", seed, "fp")
    out = build_report(results, ["synthetic"], load_targets(), tolerance=1.0)
    assert [r.method for r in out.rows] == ORDER and all(r.seeds == SEEDS for r in out.rows)
    readme = out.readme.read_text()
    assert "| synthetic | control_none | baseline | 5 | +1.1 [+0.8, +1.4] |" in readme
    assert "### Claims" in readme and "t with n-1 degrees of freedom" in readme
    assert "(GCL vs control_aug): **holds** (mAP +2.3 [+0.8, +3.9], n = 5)" in readme
    assert "(GCL+ vs GCL): **refuted**" in readme and "(GCL+ vs control_aug)" not in readme  # not a claim
    assert "| synthetic | gcl_plus | control_aug | 5 | +1.3 [-0.2, +2.8] |" in readme  # but a comparison
    assert PROCEDURAL_BODY not in readme


def test_procedural_body_on_a_real_dataset_marks_the_mesh_rows(tmp_path):
    results = tmp_path / "results"
    _fake(results, "market1501", 1, ["baseline", "control_aug", "gcl"])
    collect_dataset(results, "market1501", ["baseline", "control_aug", "gcl"], "unsupervised", 1, "fp",
                    procedural_body=True)
    out = build_report(results, ["market1501"], load_targets(), tolerance=1.0)
    status = {r.method: r.status for r in out.rows}
    assert status["gcl"].startswith(PROCEDURAL_BODY) and PROCEDURAL_BODY not in status["baseline"]
    assert PROCEDURAL_BODY not in status["control_aug"]  # no meshes in the control arms
    assert method_rank("control_aug") < method_rank("gcl") < method_rank("something_else")


def test_control_aug_keys_at_their_default_leave_archived_fingerprints_alone():
    from genreid.config.sections.gan import ControlAugConfig
    from genreid.report.seeds import config_fingerprint

    before = {"seed": 1, "train": {"epochs": 4}}  # a params tree archived before train.control_aug existed
    now = {"seed": 1, "train": {"epochs": 4, "control_aug": ControlAugConfig().model_dump(mode="json")}}
    assert config_fingerprint(now) == config_fingerprint(before)
    changed = {"seed": 1, "train": {"epochs": 4, "control_aug": ControlAugConfig(flip_p=0.3).model_dump(mode="json")}}
    assert config_fingerprint(changed) != config_fingerprint(before)


def test_uda_rows_order_and_the_direct_transfer_claim():
    rows = [_row(m) for m in ("baseline", "direct", "gcl")]
    assert sorted(["gcl", "baseline", "direct", "untrained"], key=method_rank) == ["untrained", "direct", "baseline",
                                                                                   "gcl"]
    found = {(c.method, c.reference): c for c in comparisons(rows)}
    uda = found[("baseline", "direct")]
    assert uda.gains["mAP"].stat.mean == pytest.approx(5.0) and uda.verdict == HOLDS
    assert "UDA: the target warm-up improves on direct transfer of the source encoder (baseline vs direct " \
           "transfer): **holds** (mAP +5.0" in "\n".join(claim_lines(list(found.values())))


def test_oracle_claims_and_the_share_of_the_perfect_view_gain_gcl_realises():
    from genreid.report.claims import realised_share

    oracle = [6.0, 6.5, 5.8, 6.2, 6.0]  # vs control_none: +4.98, tight; vs control_aug: about +4.3
    runs = [SeedRun(s, {"mAP": BASE[s] + oracle[i], "R1": BASE[s] + 20 + oracle[i]}, Path(f"seed_{s}.json"))
            for i, s in enumerate(SEEDS)]
    rows = [_row(m) for m in ("control_none", "control_aug", "gcl")]
    rows.append(build_row("synthetic", "oracle_views", "unsupervised", runs, {}, 1.0))
    found = comparisons(rows)
    lines = claim_lines(found)
    assert any("Perfect views beat traditional augmentation" in line and f"**{HOLDS}**" in line for line in lines)
    share = realised_share(found)
    # GCL - control_none = mean(3.0, 3.0, 3.0, 3.0, 3.0) = 3.0; oracle_views - control_none = 4.98
    assert len(share) == 1 and "**60 %**" in share[0] and "n = 5" in share[0], share
    assert realised_share(comparisons(rows[:3])) == []  # no oracle run: no share

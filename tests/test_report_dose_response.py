"""The dose-response table on made-up runs: fidelity over the novel angles, gains paired by seed with the
control arms of the same stage-3 length, 95 % t-intervals, Markdown, CSV and figure, and the copies'
reader."""

from __future__ import annotations

import csv
import io
import json

import pytest

from genreid.report.dose_response import (
    PointRun,
    conclusions,
    csv_table,
    dose_response_rows,
    findings,
    markdown_table,
    novel_view_fidelity,
    plot_dose_response,
    read_point_runs,
)

T975_2DF = 4.302652729749464  # t quantile 0.975 with 2 degrees of freedom
T975_1DF = 12.706204736174704


def _m(map_: float, r1: float | None = None) -> dict[str, float]:
    return {"mAP": map_, "R1": map_ + 10 if r1 is None else r1}


def _runs() -> list[PointRun]:
    runs = []
    for i, seed in enumerate((1, 2, 3)):
        runs.append(PointRun("default_e4", "default", 4, seed,
                             {"control_aug": _m((40, 42, 44)[i]), "control_none": _m((30, 31, 32)[i]),
                              "gcl": _m((38, 41, 41)[i]), "gcl_plus": _m((39, 40, 45)[i])},
                             {"silhouette_iou": (0.30, 0.32, 0.34)[i], "rank1": (50.0, 60.0, 70.0)[i]}))
    for i, seed in enumerate((1, 2, 3)):
        runs.append(PointRun("recon_only_e4", "recon_only", 4, seed, {"gcl": _m((35, 36, 40)[i])},
                             {"silhouette_iou": 0.2, "rank1": 40.0}))
    for i, seed in enumerate((1, 2)):  # the 12-epoch controls ran for two seeds only
        runs.append(PointRun("default_e12", "default", 12, seed,
                             {"control_aug": _m((50, 52)[i]), "control_none": _m(45), "gcl": _m((47, 50)[i])},
                             {"silhouette_iou": 0.3, "rank1": 50.0}))
    for seed in (1, 2, 3):
        runs.append(PointRun("recon_only_e12", "recon_only", 12, seed, {"gcl": _m(51 + seed)}, None))
    return runs


def test_gains_are_paired_by_seed_with_the_controls_of_the_same_stage3_length():
    rows = {r.point: r for r in dose_response_rows(_runs())}
    assert list(rows) == ["default_e4", "recon_only_e4", "default_e12", "recon_only_e12"]
    default = rows["default_e4"]
    assert default.seeds == [1, 2, 3] and default.fidelity["silhouette_iou"].mean == pytest.approx(0.32)
    assert default.fidelity["rank1"].std == pytest.approx(10.0) and default.means["gcl"].mean == pytest.approx(40.0)
    vs_aug = default.gains[("gcl", "control_aug")]["mAP"]  # diffs -2, -1, -3
    assert vs_aug.stat.mean == pytest.approx(-2.0) and vs_aug.stat.std == pytest.approx(1.0) and vs_aug.wins == 0
    assert vs_aug.ci95 == pytest.approx((-2 - T975_2DF / 3 ** 0.5, -2 + T975_2DF / 3 ** 0.5))  # [-4.484, 0.484]
    recon = rows["recon_only_e4"]
    assert recon.gains[("gcl", "control_aug")]["mAP"].ci95 == pytest.approx((-7.48414, -2.51586), abs=1e-4)
    vs_none = recon.gains[("gcl", "control_none")]["mAP"]  # diffs 5, 5, 8
    assert vs_none.stat.mean == pytest.approx(6.0) and vs_none.stat.std == pytest.approx(3 ** 0.5)
    assert vs_none.ci95 == pytest.approx((6 - T975_2DF, 6 + T975_2DF)) and vs_none.wins == 3
    assert ("gcl_plus", "control_aug") not in recon.gains  # GCL+ did not run there
    late = rows["recon_only_e12"].gains[("gcl", "control_aug")]["mAP"]  # seed 3 has no 12-epoch reference
    assert late.stat.n == 2 and late.stat.mean == pytest.approx(((52 - 50) + (53 - 52)) / 2)
    assert late.ci95 == pytest.approx((1.5 - T975_1DF * 0.5 ** 0.5 / 2 ** 0.5, 1.5 + T975_1DF * 0.5 ** 0.5 / 2 ** 0.5))
    assert rows["recon_only_e12"].fidelity == {}
    assert rows["default_e12"].gains[("gcl", "control_none")]["R1"].stat.mean == pytest.approx(3.5)


def test_two_disagreeing_reference_runs_of_one_seed_are_refused():
    runs = _runs() + [PointRun("other_e4", "other", 4, 1, {"control_aug": _m(99)}, None)]
    with pytest.raises(ValueError, match="control_aug ran twice with 4 stage-3 epochs for seed 1"):
        dose_response_rows(runs)


def test_markdown_and_csv_carry_the_numbers():
    rows = dose_response_rows(_runs())
    md = markdown_table(rows)
    assert "| recon_only_e4 | recon_only | 4 | 1, 2, 3 | 0.200 ± 0.000 | 40.0 ± 0.0 | 37.0 ± 2.6 | " \
           "-5.0 [-7.5, -2.5] (0/3) | +6.0 [+1.7, +10.3] (3/3) | - | - |" in md
    assert "| default_e4 | default | 4 | 1, 2, 3 | 0.320 ± 0.020 | 60.0 ± 10.0 | 40.0 ± 1.7 | " \
           "-2.0 [-4.5, +0.5] (0/3)" in md
    table = {r["point"]: r for r in csv.DictReader(io.StringIO(csv_table(rows)))}
    rec = table["recon_only_e4"]
    assert rec["n_seeds"] == "3" and rec["seeds"] == "1 2 3" and rec["gcl_mAP_mean"] == "37.0000"
    assert rec["gcl_minus_control_aug_mAP_ci_low"] == "-7.4841"
    assert rec["gcl_minus_control_aug_mAP_ci_high"] == "-2.5159"
    assert rec["gcl_minus_control_none_mAP_wins"] == "3" and rec["gcl_plus_minus_control_aug_mAP_mean"] == ""
    assert table["default_e4"]["gcl_plus_minus_control_aug_mAP_mean"] == "-0.6667"
    assert table["default_e4"]["fidelity_silhouette_iou_std"] == "0.0200"


def test_figure_is_a_png(tmp_path):
    out = plot_dose_response(dose_response_rows(_runs()), tmp_path / "figure.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_novel_view_fidelity_leaves_the_reconstruction_angle_out():
    fidelity = {"available": True, "per_angle": [
        {"angle": 0, "silhouette_iou": 0.9, "rank1": 100.0}, {"angle": 90, "silhouette_iou": 0.3, "rank1": 50.0},
        {"angle": 180, "silhouette_iou": 0.5, "rank1": 70.0}]}
    assert novel_view_fidelity(fidelity) == pytest.approx({"silhouette_iou": 0.4, "rank1": 60.0})
    assert novel_view_fidelity({"available": False, "reason": "no true views"}) is None


def test_read_point_runs_reads_the_finished_copies_only(tmp_path):
    def write(point, seed, methods, order, done=True):
        folder = tmp_path / point / f"seed_{seed}"
        for i, m in enumerate(methods):
            (folder / m).mkdir(parents=True)
            (folder / m / "metrics.json").write_text(json.dumps({"mAP": 30.0 + i, "R1": 40.0 + i, "mINP": 1.0}))
        (folder / "pretrain").mkdir(parents=True)
        (folder / "pretrain" / "view_fidelity.json").write_text(json.dumps(
            {"available": True, "per_angle": [{"angle": 90, "silhouette_iou": 0.25, "rank1": 55.0}]}))
        if done:
            (folder / "run.json").write_text(json.dumps({"point": point, "budget": point.rsplit("_e", 1)[0],
                                                         "stage3_epochs": 4, "seed": seed, "methods": methods,
                                                         "order": order}))

    write("recon_only_e4", 1, ["gcl"], order=1)
    write("default_e4", 1, ["control_aug", "gcl"], order=0)
    write("default_e4", 2, ["control_aug", "gcl"], order=0, done=False)  # killed before its copy finished
    runs = read_point_runs(tmp_path)
    assert [(r.point, r.seed) for r in runs] == [("default_e4", 1), ("recon_only_e4", 1)]
    assert runs[0].metrics == {"control_aug": {"mAP": 30.0, "R1": 40.0}, "gcl": {"mAP": 31.0, "R1": 41.0}}
    assert runs[1].fidelity == {"silhouette_iou": 0.25, "rank1": 55.0} and runs[1].budget == "recon_only"


def test_other_budgets_are_paired_with_the_default_budget_of_the_same_length():
    rows = {r.point: r for r in dose_response_rows(_runs())}
    assert rows["default_e4"].vs_default == {} and rows["default_e12"].vs_default == {}
    recon = rows["recon_only_e4"].vs_default["gcl"]["mAP"]  # 35-38, 36-41, 40-41: -3, -5, -1
    assert recon.stat.mean == pytest.approx(-3.0) and recon.stat.std == pytest.approx(2.0) and recon.wins == 0
    assert recon.ci95 == pytest.approx((-3 - T975_2DF * 2 / 3 ** 0.5, -3 + T975_2DF * 2 / 3 ** 0.5))
    assert "gcl_plus" not in rows["recon_only_e4"].vs_default  # GCL+ did not run there
    late = rows["recon_only_e12"].vs_default["gcl"]["mAP"]  # default_e12 ran seeds 1, 2: 52-47, 53-50
    assert late.stat.n == 2 and late.stat.mean == pytest.approx(4.0) and late.wins == 2
    table = {r["point"]: r for r in csv.DictReader(io.StringIO(csv_table(list(rows.values()))))}
    assert table["recon_only_e4"]["gcl_minus_gcl_at_default_budget_mAP_mean"] == "-3.0000"
    assert table["default_e4"]["gcl_minus_gcl_at_default_budget_mAP_mean"] == ""
    assert table["default_e12"]["gcl_minus_control_aug_mAP_longer_minus_shortest_stage3_mean"] == "-1.0000"
    assert table["default_e12"]["gcl_minus_control_aug_mAP_longer_minus_shortest_stage3_n"] == "2"
    assert "| -3.0 [-8.0, +2.0] (0/3) |" in markdown_table(list(rows.values()))


def test_findings_call_a_difference_only_when_its_interval_excludes_zero():
    sentences = findings(dose_response_rows(_runs()))
    assert sentences[0] == ("GCL is resolved better than control_aug at no point: not resolved at `default_e4` "
                            "(-2.0 [-4.5, +0.5]), `default_e12` (-2.5 [-8.9, +3.9]) and `recon_only_e12` "
                            "(+1.5 [-4.9, +7.9]); resolved worse at `recon_only_e4` (-5.0 [-7.5, -2.5]).")
    assert sentences[1].startswith("GCL is resolved better than control_none at `default_e4` (+9.0 [")
    assert ("`recon_only_e4` (are the generated views too weak? stage-2 identity R1 40.0 % against 60.0 % at the "
            "default budget): GCL minus GCL at the default budget (4 stage-3 epochs, paired by seed): -3.0 [-8.0, "
            "+2.0] mAP (0/3 seeds higher; not resolved).") in sentences
    # default_e12 against default_e4, seeds 1 and 2: GCL - control_aug -3, -2 at 12 epochs and -2, -1 at 4
    assert ("The schedule (`default_e12` against the shortest stage 3, same generator): GCL minus control_aug "
            "moves by -1.0 [-1.0, -1.0] mAP (0/2 seeds in favour of GCL; worse).") in sentences
    assert rows_schedule_free(sentences)
    one_seed = [PointRun("default_e4", "default", 4, 1, {"control_aug": _m(40), "gcl": _m(38)}, None),
                PointRun("detach_e4", "detach", 4, 1, {"gcl": _m(39)}, None)]
    assert findings(dose_response_rows(one_seed)) == [
        "GCL is resolved better than control_aug at no point: one seed at `default_e4` (-2.0) and `detach_e4` (-1.0).",
        "`detach_e4` (does the GAN's gradient into E_id hurt it?): GCL minus GCL at the default budget (4 stage-3 "
        "epochs, paired by seed): +1.0 mAP (1/1 seeds higher; one seed, no interval)."]


def rows_schedule_free(sentences: list[str]) -> bool:
    """Only the default budget's longer stage 3 gets a schedule line (GCL against each control)."""
    schedule = [s for s in sentences if s.startswith("The schedule")]
    return len(schedule) == 2 and all("`default_e12`" in s for s in schedule)


def test_the_oracle_arm_is_the_ceiling_of_its_stage3_length(tmp_path):
    runs = [PointRun("default_e4", "default", 4, seed,
                     {"control_aug": _m(40 + seed), "control_none": _m(30), "oracle_views": _m(41 + 2 * seed),
                      "gcl": _m(38)}, {"silhouette_iou": 0.3, "rank1": 50.0}) for seed in (1, 2, 3)]
    runs.append(PointRun("recon_only_e4", "recon_only", 4, 1, {"gcl": _m(37)}, None))
    rows = {r.point: r for r in dose_response_rows(runs)}
    oracle = rows["default_e4"].gains[("oracle_views", "control_aug")]["mAP"]  # 1 + seed: 2, 3, 4
    assert oracle.stat.mean == pytest.approx(3.0) and oracle.wins == 3 and oracle.verdict == "better"
    assert ("oracle_views", "control_aug") not in rows["recon_only_e4"].gains
    sentences = findings(list(rows.values()))
    assert ("The ceiling at 4 stage-3 epochs: oracle_views (true novel views, no generator) minus control_aug: "
            "+3.0 [+0.5, +5.5] mAP (3/3 seeds higher; better).") in sentences
    table = {r["point"]: r for r in csv.DictReader(io.StringIO(csv_table(list(rows.values()))))}
    assert table["default_e4"]["oracle_views_minus_control_none_mAP_mean"] == "15.0000"
    assert table["default_e4"]["oracle_views_mAP_mean"] == "45.0000"
    assert "oracle_views" not in markdown_table(list(rows.values()))  # the Markdown keeps GCL's columns
    assert plot_dose_response(list(rows.values()), tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_conclusions_answer_each_explanation_from_the_intervals():
    runs = [PointRun("default_e4", "default", 4, seed,
                     {"control_aug": _m(44), "control_none": _m(36), "oracle_views": _m((40, 41, 42)[seed - 1]),
                      "gcl": _m((37, 38, 38)[seed - 1])}, {"silhouette_iou": 0.3, "rank1": 80.0})
            for seed in (1, 2, 3)]
    runs += [PointRun("detach_e4", "detach", 4, seed, {"gcl": _m((38, 38, 40)[seed - 1])},
                      {"silhouette_iou": 0.3, "rank1": 80.0}) for seed in (1, 2, 3)]
    runs += [PointRun("recon_only_e4", "recon_only", 4, seed, {"gcl": _m((36, 39, 37)[seed - 1])},
                      {"silhouette_iou": 0.2, "rank1": 70.0}) for seed in (1, 2, 3)]
    answers = conclusions(dose_response_rows(runs))
    # GCL - control_aug: -7, -6, -6; oracle - control_aug: -4, -3, -2; oracle - control_none: +4, +5, +6
    assert answers[0] == "Which regime makes GCL beat control_aug: none of the 3 points with an interval."
    assert answers[1].startswith("Weak generated views: not the explanation of the gap to control_aug. Even true "
                                 "novel views (oracle_views) do not beat it: oracle_views minus control_aug -3.0 [")
    assert answers[1].endswith("(stage-2 identity R1 70 %) move GCL by a resolved amount at no point.")
    # detach - default: +1, 0, +2 -> mean +1, interval [-1.5, +3.5]
    assert answers[2] == ("The GAN's gradients into E_id: not supported. Detaching the appearance code moves GCL by "
                          "+1.0 [-1.5, +3.5] (4 stage-3 epochs, not resolved) mAP against the default budget.")
    assert answers[3].startswith("What is left is the kind of positive view") and "+5.0 [" in answers[3]
    assert "better)" in answers[3]
    # a ceiling that beats control_aug turns the weak-views answer around and drops the last sentence
    lifted = [PointRun(r.point, r.budget, r.stage3_epochs, r.seed,
                       {**r.metrics, "oracle_views": _m(r.metrics["oracle_views"]["mAP"] + 8)}
                       if "oracle_views" in r.metrics else r.metrics, r.fidelity) for r in runs]
    answers = conclusions(dose_response_rows(lifted))
    assert answers[1].startswith("Weak generated views: possible. True novel views beat control_aug at 4 stage-3 "
                                 "epochs, so a good enough generator could close the gap")
    assert not any(a.startswith("What is left") for a in answers)
    assert conclusions(dose_response_rows(runs[:1])) == []  # one seed: no interval, no answer

"""The report stage end to end on hand-made evaluation outputs: table, CSV, figures, seeds, links."""

import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from genreid.errors import GenreidError
from genreid.report.collect import collect_dataset, read_metrics
from genreid.report.report import build_report
from genreid.report.targets import load_targets
from genreid.stage import run_stage, stage_parser

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["untrained", "baseline", "gcl", "gcl_plus"]


def _fake_results(results: Path, ds: str, scores: dict[str, float], seed: int = 1) -> None:
    for method, m in scores.items():
        folder = results / ds / method
        folder.mkdir(parents=True, exist_ok=True)
        # as the evaluate stage writes them: numbers in metrics.json, seed and training record beside it
        (folder / "metrics.json").write_text(json.dumps(
            {"mAP": m, "R1": m + 20, "R5": m + 25, "R10": m + 28, "mINP": m / 2}))
        (folder / "provenance.json").write_text(json.dumps(
            {"provenance": {"seed": seed},
             "training": {} if method == "untrained" else {"selected_on": "val_map", "selected_epoch": 3,
                                                           "last_epoch": 4, "history": []}}))
        (folder / "cmc.csv").write_text("rank,cmc\n" + "".join(f"{r},{min(100, m + 20 + 3 * r)}\n"
                                                                 for r in range(1, 21)))
        (folder / "ranked_lists.png").write_bytes(b"\x89PNG fake")
    # the warm-up logs flat names, the joint trainer nests them (as the real trainers do)
    logged = {"baseline": ("loss", "val_mAP", "nmi", "clusters", "lr"),
              "gcl": ("loss/total", "val/mAP", "pseudo/nmi", "pseudo/num_clusters", "pseudo/largest_cluster")}
    for run, names in logged.items():
        root = results / ds / run / "train" / "plots" / "metrics"
        for name in names:
            tsv = root / f"{name}.tsv"
            tsv.parent.mkdir(parents=True, exist_ok=True)
            leaf = tsv.stem
            tsv.write_text(f"timestamp\tstep\t{leaf}\n1\t0\t3.0\n2\t1\t2.5\n")


def _build(results: Path, ds: str = "market1501", fingerprint: str = "fp1", seed: int = 1):
    collect_dataset(results, ds, METHODS, "unsupervised", seed, fingerprint)
    return build_report(results, [ds], load_targets(), tolerance=1.0)


def test_report_table_figures_and_links(tmp_path):
    results = tmp_path / "results"
    _fake_results(results, "market1501", {"untrained": 2.0, "baseline": 40.0, "gcl": 45.0, "gcl_plus": 47.5})
    out = _build(results)
    readme = out.readme.read_text()
    rows = {r.method: r for r in out.rows}
    assert rows["gcl"].stats["mAP"].mean == 45.0 and rows["gcl"].delta("mAP") == pytest.approx(45.0 - 66.8)
    assert "| market1501 | unsupervised | gcl | 1 | 45.0 | 65.0 | 70.0 | 73.0 | 22.5 | 66.8 / 87.3 | -21.8 / -22.3 |" \
        in readme
    assert "| market1501 | unsupervised | untrained | 1 | 2.0 |" in readme and "no published target" in readme
    assert "| market1501 | gcl_plus | baseline | 1 | +7.5 | +7.5 | 1 of 1 | not resolved |" in readme  # one seed
    assert "| market1501 | gcl | validation mAP | 3 | 4 |" in readme and "| market1501 | untrained | val" not in readme
    for fig in ("cmc", "stage1", "stage3_losses", "stage3_quality"):
        assert (results / "plots" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"](plots/{fig}.png)" in readme
    assert "[ranked lists, gcl (best and worst queries)](market1501/gcl/ranked_lists.png)" in readme
    assert "market1501 / unsupervised / gcl / mAP = 66.8 (unverified): benchmark aggregator" in readme
    headline = json.loads((results / "metrics.json").read_text())
    assert headline["market1501"]["gcl"] == {"mAP": 45.0, "R1": 65.0, "R5": 70.0, "R10": 73.0, "mINP": 22.5,
                                             "n_seeds": 1}
    summary = list(csv.DictReader(out.summary_csv.open()))
    assert [r["method"] for r in summary] == METHODS and summary[2]["target_mAP"] == "66.8"
    cmc = list(csv.DictReader((results / "plots" / "cmc.csv").open()))
    assert len(cmc) == 4 * 20 and cmc[0] == {"dataset": "market1501", "method": "untrained", "rank": "1",
                                             "cmc": "25.0000"}
    # one figure per stage, one panel per metric with its unit; validation in percent, learning rates left out
    stage1 = [(r["run"], r["panel"], float(r["epoch"]), float(r["value"]))
              for r in csv.DictReader((results / "plots" / "stage1.csv").open())]
    assert {(run, panel) for run, panel, _, _ in stage1} == {
        ("baseline", "loss: total"), ("baseline", "validation mAP (%)"), ("baseline", "clusters (count)"),
        ("baseline", "NMI with the true identities (0-1)")}
    assert ("baseline", "validation mAP (%)", 1.0, 250.0) in stage1  # dvclive logged the fraction 2.5
    quality = {(r["run"], r["panel"]) for r in csv.DictReader((results / "plots" / "stage3_quality.csv").open())}
    assert quality == {("gcl", "validation mAP (%)"), ("gcl", "clusters (count)"),
                       ("gcl", "NMI with the true identities (0-1)")}
    losses = {(r["run"], r["panel"]) for r in csv.DictReader((results / "plots" / "stage3_losses.csv").open())}
    assert losses == {("gcl", "loss: total")}
    assert not (results / "plots" / "stage2.png").exists()  # no pretrain log: no empty figure

def test_seeds_accumulate_and_other_settings_stay_apart(tmp_path):
    results = tmp_path / "results"
    _fake_results(results, "market1501", {m: 40.0 for m in METHODS}, seed=1)
    _build(results)
    _fake_results(results, "market1501", {m: 44.0 for m in METHODS}, seed=2)
    out = _build(results)
    gcl = next(r for r in out.rows if r.method == "gcl")
    assert gcl.seeds == [1, 2] and gcl.stats["mAP"].mean == 42.0
    assert "| market1501 | unsupervised | gcl | 2 | 42.0 ± 2.8 |" in out.readme.read_text()
    assert (results / "seeds" / "market1501" / "gcl" / "fp1" / "seed_2.json").is_file()
    other = _build(results, fingerprint="fp-other", seed=2)
    gcl = next(r for r in other.rows if r.method == "gcl")
    assert gcl.seeds == [2]
    assert "Archived seeds with other settings" in other.readme.read_text()
    listed = "- `seeds/market1501/gcl/fp1/ (recipe unknown, machine not recorded (seeds 1, 2), seeds 1, 2)`"
    assert listed in other.readme.read_text()
    assert json.loads((results / "seeds" / "market1501" / "gcl" / "fp1" / "seed_2.json").read_text())["metrics"][
        "mAP"] == 44.0  # the other settings' seed 2 was filed apart


def test_missing_or_bad_metrics_are_user_errors(tmp_path):
    with pytest.raises(GenreidError, match="metrics.json is missing"):
        read_metrics(tmp_path / "metrics.json")
    (tmp_path / "metrics.json").write_text(json.dumps({"accuracy": 3}))
    with pytest.raises(GenreidError, match="no mAP / R1"):
        read_metrics(tmp_path / "metrics.json")
    (tmp_path / "metrics.json").write_text(json.dumps({"test": {"rank1": 50.0, "mAP": 30.0}, "seed": 4}))
    assert read_metrics(tmp_path / "metrics.json") == ({"mAP": 30.0, "R1": 50.0}, 4)


def _stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_stage_entry_points(tmp_path, monkeypatch, capsys):
    """collect and report run from the repo layout with params.yaml; a user error exits 2, no traceback
    (in-process: the end-to-end test runs them as DVC commands)."""
    _fake_results(tmp_path / "results", "synthetic", {"untrained": 3.0, "baseline": 30.0, "control_none": 31.0,
                                                        "control_aug": 32.0, "oracle_views": 34.0, "gcl": 33.0,
                                                        "gcl_plus": 35.0})
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["report"]["targets"] = str(ROOT / "genreid" / "report" / "targets.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    collect, report = _stage("collect"), _stage("report")
    assert run_stage(collect.main, stage_parser("collect"), ["--dataset", "synthetic"]) == 0
    assert run_stage(report.main, stage_parser("report", per_dataset=False), []) == 0
    assert (tmp_path / "results" / "collected" / "synthetic.json").is_file()
    readme = (tmp_path / "results" / "README.md").read_text()
    assert "| synthetic | unsupervised | gcl_plus | 1 | 35.0 |" in readme
    assert "None: no published number exists" in readme
    (tmp_path / "results" / "synthetic" / "gcl" / "metrics.json").unlink()
    capsys.readouterr()
    assert run_stage(collect.main, stage_parser("collect"), ["--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err
    assert "synthetic/gcl/metrics.json is missing" in err and "Traceback" not in err


def test_last_pseudo_label_ari_is_archived_per_seed_and_reported(tmp_path):
    results = tmp_path / "results"
    for seed, aris in ((1, [0.10, 0.34]), (2, [0.12, 0.31])):
        _fake_results(results, "market1501", {m: 40.0 + seed for m in METHODS}, seed=seed)
        summary = results / "market1501" / "baseline" / "train" / "summary.json"
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps({"history": [{"epoch": i, "pseudo_ari": a} for i, a in enumerate(aris)]}))
        out = _build(results, seed=seed)
    entry = json.loads((results / "seeds" / "market1501" / "baseline" / "fp1" / "seed_2.json").read_text())
    assert entry["training"] == {"last_pseudo_ari": 0.31}
    assert "training" not in json.loads((results / "seeds" / "market1501" / "gcl" / "fp1" / "seed_2.json").read_text())
    readme = out.readme.read_text()
    assert "| market1501 | baseline | 2 | 1: 0.340, 2: 0.310 | 0.310 |" in readme
    assert "| market1501 | gcl |" not in readme.split("## Pseudo-label quality")[1].split("##")[0]


def test_the_synthreid_regime_paragraph_states_the_scale_against_the_papers():
    from genreid.config import load_config
    from genreid.report.regime import regime_lines

    text = regime_lines(load_config(ROOT / "params" / "synthetic_cpu.yaml"))[0]
    for part in ("64x32 images (papers 256x128)", "E_id a ResNet-18 from scratch, 128-d features",
                 "(papers: ResNet-50 from ImageNet, 512-d features)", "stage 2 27 epochs, the first 988 iterations",
                 "(papers 40, every loss from the start)", "stage 3 4 epochs (papers 20)", "`landmarks` estimator",
                 "verdicts below hold for this regime"):
        assert part in text, part
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)  # relative to results/, where the README lies
    assert links == ["experiments/dose_response/table.md", "../docs/usage.md"]
    assert all((ROOT / "results" / link).is_file() for link in links)
    assert "### The dose-response experiment" in (ROOT / "docs" / "usage.md").read_text()
    assert regime_lines(load_config(ROOT / "params" / "market1501.yaml")) == []  # real data: no paragraph

"""Seeds aggregation, PASS/FAIL only against checked targets, the seed archive and its fingerprint."""

import csv
import io
import json
import statistics
from pathlib import Path

import pytest

from genreid.errors import GenreidError
from genreid.report.seeds import (
    RunFacts,
    SeedRun,
    archive_run,
    collect_runs,
    config_fingerprint,
    recipe_name,
    settings_groups,
)
from genreid.report.tables import (
    FAIL,
    NO_TARGET,
    PASS,
    UNVERIFIED,
    aggregate,
    build_row,
    csv_text,
    judge,
    markdown_table,
    paired_gains,
)
from genreid.report.targets import Target


def _run(seed, **m):
    return SeedRun(seed=seed, metrics=m, path=Path(f"seed_{seed}.json"))


def test_mean_and_sample_std_over_seeds():
    stats = aggregate([_run(1, mAP=60.0, R1=80.0), _run(2, mAP=62.0, R1=81.0), _run(3, mAP=67.0, R1=85.0)])
    assert stats["mAP"].mean == pytest.approx(63.0)
    assert stats["mAP"].std == pytest.approx(statistics.stdev([60.0, 62.0, 67.0]))
    assert stats["R1"].n == 3 and "R5" not in stats
    assert stats["mAP"].format() == "63.0 ± 3.6"
    single = aggregate([_run(1, mAP=60.04)])
    assert single["mAP"].std is None and single["mAP"].format() == "60.0"


def test_only_checked_targets_decide_the_status():
    stats = aggregate([_run(1, mAP=60.0, R1=80.0)])
    unchecked = {"mAP": Target(value=66.8, checked=False, provenance="aggregator")}
    assert judge(stats, unchecked, 1.0) == (UNVERIFIED, [])
    assert judge(stats, {}, 1.0) == (NO_TARGET, [])
    assert judge(stats, {"mAP": Target(value=None, provenance="to read from the paper")}, 1.0) == (NO_TARGET, [])
    near = {"mAP": Target(value=60.9, checked=True, provenance="Table 2")}
    assert judge(stats, near, 1.0) == (PASS, [])
    far = {"mAP": Target(value=61.5, checked=True, provenance="Table 2"),
           "R1": Target(value=70.0, checked=True, provenance="Table 2")}
    status, failures = judge(stats, far, 1.0)
    assert status == FAIL and failures == ["mAP 60.0 < 61.5 - 1"]
    status, failures = judge(stats, {"R5": Target(value=10.0, checked=True, provenance="Table 3")}, 1.0)
    assert status == FAIL and failures == ["R5 not measured"]


def test_row_delta_markdown_and_csv():
    runs = [_run(1, mAP=60.0, R1=80.0, R5=90.0, R10=93.0, mINP=20.0), _run(2, mAP=62.0, R1=82.0)]
    targets = {"mAP": Target(value=66.8, checked=False, provenance="aggregator entry"),
               "R1": Target(value=87.3, checked=False, provenance="aggregator entry")}
    row = build_row("market1501", "gcl", "unsupervised", runs, targets, 1.0)
    assert row.seeds == [1, 2] and row.delta("mAP") == pytest.approx(61.0 - 66.8) and row.delta("R5") is None
    md = markdown_table([row])
    line = md.splitlines()[2]
    assert line.startswith("| market1501 | unsupervised | gcl | 2 | 61.0 ± 1.4 | 81.0 ± 1.4 | 90.0 | 93.0 |")
    assert "66.8 / 87.3" in line and "-5.8 / -6.3" in line and UNVERIFIED in line
    rec = next(csv.DictReader(io.StringIO(csv_text([row]))))
    assert rec["n_seeds"] == "2" and rec["seeds"] == "1 2" and float(rec["mAP_mean"]) == pytest.approx(61.0)
    assert float(rec["delta_R1"]) == pytest.approx(-6.3) and rec["target_R5"] == "" and rec["status"] == UNVERIFIED
    assert rec["target_provenance"] == "aggregator entry"


def test_gains_are_paired_by_seed_and_skip_unpaired_seeds():
    base = build_row("s", "baseline", "u", [_run(1, mAP=10.0), _run(2, mAP=20.0), _run(3, mAP=15.0)], {}, 1.0)
    # +1, +2, -0.5 on the seeds both ran; seed 4 has no baseline and is left out
    gcl = build_row("s", "gcl", "u", [_run(1, mAP=11.0), _run(2, mAP=22.0), _run(3, mAP=14.5), _run(4, mAP=99.0)],
                    {}, 1.0)
    g = paired_gains(gcl, base, ("mAP",))
    assert g["mAP"].stat.n == 3 and g["mAP"].wins == 2
    assert g["mAP"].stat.mean == pytest.approx(2.5 / 3)
    assert g["mAP"].stat.std == pytest.approx(statistics.stdev([1.0, 2.0, -0.5]))
    lo, hi = g["mAP"].ci95  # t(0.975, 2) = 4.303: mean ± 4.303 * 1.258 / sqrt(3)
    assert (lo, hi) == (pytest.approx(-2.2925, abs=1e-3), pytest.approx(3.9591, abs=1e-3))
    assert g["mAP"].format() == "+0.8 [-2.3, +4.0]" and g["mAP"].verdict == "not resolved"
    clear = build_row("s", "gcl", "u", [_run(1, mAP=13.0), _run(2, mAP=23.5), _run(3, mAP=18.0)], {}, 1.0)
    g2 = paired_gains(clear, base, ("mAP",))
    assert g2["mAP"].ci95[0] > 0 and g2["mAP"].verdict == "better"  # +3, +3.5, +3: the interval excludes zero


def test_fingerprint_ignores_seed_and_runtime_only():
    base = {"seed": 1, "runtime": {"num_threads": 2}, "train": {"epochs": 4, "methods": ["gcl"]},
            "eval": {"flip": False, "methods": ["gcl"]}, "report": {"tolerance": 1.0}}
    fp = config_fingerprint(base)
    same = {**base, "seed": 7, "runtime": {"num_threads": 16}, "report": {"tolerance": 3.0},
            "train": {"epochs": 4, "methods": ["gcl", "gcl_plus"]}}
    assert config_fingerprint(same) == fp
    assert config_fingerprint({**base, "train": {"epochs": 5, "methods": ["gcl"]}}) != fp
    assert config_fingerprint({**base, "eval": {"flip": True, "methods": ["gcl"]}}) != fp
    assert base["seed"] == 1 and "methods" in base["train"]  # input left untouched


def test_fingerprint_separates_code_versions(monkeypatch):
    """Other SynthReID bytes or another seed scheme is another settings group, with equal params."""
    from genreid.utils import versions

    params = {"seed": 1, "train": {"epochs": 4}}
    fp = config_fingerprint(params)
    monkeypatch.setattr(versions, "SYNTHREID_GENERATOR_VERSION", versions.SYNTHREID_GENERATOR_VERSION + 1)
    assert config_fingerprint(params) != fp
    monkeypatch.undo()
    assert config_fingerprint(params) == fp
    monkeypatch.setattr(versions, "STREAM_SCHEME_VERSION", versions.STREAM_SCHEME_VERSION + 1)
    assert config_fingerprint(params) != fp


def test_archive_groups_seeds_of_the_same_settings(tmp_path):
    for seed, value in ((1, 60.0), (2, 64.0)):
        archive_run(tmp_path, "synthetic", "gcl", seed, {"mAP": value, "R1": 80.0}, "fpA")
    archive_run(tmp_path, "synthetic", "gcl", 3, {"mAP": 10.0, "R1": 10.0}, "fpB")
    archive_run(tmp_path, "synthetic", "gcl", 2, {"mAP": 62.0, "R1": 80.0}, "fpA")  # rerun of seed 2 replaces it
    runs, other = collect_runs(tmp_path, "synthetic", "gcl", "fpA")
    assert [r.seed for r in runs] == [1, 2] and [r.metrics["mAP"] for r in runs] == [60.0, 62.0]
    assert [p.relative_to(tmp_path).as_posix() for p in other] == ["synthetic/gcl/fpB/seed_3.json"]
    assert collect_runs(tmp_path, "synthetic", "baseline", "fpA") == ([], [])


def test_a_run_of_other_settings_never_overwrites_a_record(tmp_path):
    """The tiny recipe's seed 1 lands beside the default recipe's seed 1, which keeps its numbers."""
    default = archive_run(tmp_path, "synthetic", "gcl", 1, {"mAP": 37.96, "R1": 51.9}, "fpDefault")
    tiny = archive_run(tmp_path, "synthetic", "gcl", 1, {"mAP": 17.93, "R1": 20.0}, "fpTiny",
                       RunFacts(recipe="tiny"))
    assert default != tiny and json.loads(default.read_text())["metrics"]["mAP"] == 37.96
    assert json.loads(tiny.read_text())["recipe"] == "tiny"
    runs, other = collect_runs(tmp_path, "synthetic", "gcl", "fpDefault")
    assert [r.metrics["mAP"] for r in runs] == [37.96] and other == [tiny]
    unrecorded = {"machine not recorded": [1]}
    assert settings_groups(tmp_path, "synthetic", "gcl") == {
        "fpDefault": {"recipe": "unknown", "seeds": [1], "machines": unrecorded},
        "fpTiny": {"recipe": "tiny", "seeds": [1], "machines": unrecorded}}


def test_each_seed_records_its_machine_and_the_group_lists_them():
    """A seed's record names the CPU it ran on (results differ across CPU types), cap included."""
    import tempfile

    from genreid.report.collect import machines_text
    from genreid.utils.isa import CAP_ENVIRONMENT

    epyc = {"model": "AMD EPYC", "isa": ["avx2", "avx512f"], "cap": {"OPENBLAS_CORETYPE": "Haswell"}}
    xeon = {"model": "Intel Xeon", "isa": ["avx2", "avx512f", "amx_tile"], "cap": dict(CAP_ENVIRONMENT["avx2"])}
    with tempfile.TemporaryDirectory() as tmp:
        for seed, machine in ((1, epyc), (2, epyc), (3, xeon), (4, None)):
            path = archive_run(tmp, "synthetic", "gcl", seed, {"mAP": 1.0}, "fp", RunFacts(machine=machine))
            assert json.loads(path.read_text()).get("machine") == machine
        machines = settings_groups(tmp, "synthetic", "gcl")["fp"]["machines"]
    assert machines == {"AMD EPYC (AVX-512, cap off)": [1, 2], "Intel Xeon (AVX-512, AMX, cap avx2)": [3],
                        "machine not recorded": [4]}
    assert machines_text(machines) == ("AMD EPYC (AVX-512, cap off) (seeds 1, 2); Intel Xeon (AVX-512, AMX, "
                                       "cap avx2) (seed 3); machine not recorded (seed 4)")


def test_a_record_moved_to_another_settings_folder_is_refused(tmp_path):
    path = archive_run(tmp_path, "synthetic", "gcl", 1, {"mAP": 1.0, "R1": 1.0}, "fpA")
    moved = tmp_path / "synthetic" / "gcl" / "fpB" / "seed_1.json"
    moved.parent.mkdir()
    path.rename(moved)
    with pytest.raises(GenreidError, match="records settings fpA but lies in the folder of fpB"):
        collect_runs(tmp_path, "synthetic", "gcl", "fpB")


def test_recipe_name_comes_from_the_params_header(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("# Resolved from params/tiny.yaml by `genreid recipe apply`; edit the recipe.\nseed: 1\n")
    assert recipe_name(params) == "tiny"
    params.write_text("seed: 1\n")
    assert recipe_name(params) == "unknown" and recipe_name(tmp_path / "missing.yaml") == "unknown"


def test_fingerprint_separates_an_instruction_set_cap_but_not_its_absence():
    """Runs under runtime.cpu_isa_cap avx2 use other kernels: their own group; cap off (the default) is the
    group of runs archived before the cap was fingerprinted, and other runtime keys still do not count."""
    base = {"seed": 1, "runtime": {"num_threads": 2}, "train": {"epochs": 4}}
    fp = config_fingerprint(base)
    assert config_fingerprint({**base, "runtime": {"num_threads": 2, "cpu_isa_cap": "off"}}) == fp
    capped = config_fingerprint({**base, "runtime": {"num_threads": 2, "cpu_isa_cap": "avx2"}})
    assert capped != fp
    assert config_fingerprint({**base, "runtime": {"num_threads": 16, "cpu_isa_cap": "avx2"}}) == capped
    assert config_fingerprint({**base, "runtime": {"cpu_isa_cap": "sse41"}}) not in (fp, capped)

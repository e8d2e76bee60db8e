"""Two settings groups of the seed archive compared method by method, paired by seed."""

import pytest

from genreid.report.groups import compare_groups, main, render_markdown
from genreid.report.seeds import RunFacts, archive_run


def _archive(root, fp, values, method="gcl"):
    for seed, value in values.items():
        archive_run(root, "synthetic", method, seed, {"mAP": value, "R1": value + 10, "mINP": value / 2}, fp)


def test_the_paired_difference_covers_the_seeds_both_groups_ran(tmp_path):
    _archive(tmp_path, "est", {1: 30.0, 2: 32.0, 3: 31.0, 4: 29.0})
    _archive(tmp_path, "true", {1: 31.0, 2: 34.0, 3: 32.5})  # +1, +2, +1.5 on the common seeds
    (pair,) = compare_groups(tmp_path, "synthetic", ["gcl"], "est", "true")
    gain = pair.gains["mAP"]
    assert gain.stat.n == 3 and gain.stat.mean == pytest.approx(1.5) and gain.wins == 3
    lo, hi = gain.ci95
    assert lo == pytest.approx(1.5 - 4.302653 * 0.5 / 3 ** 0.5, abs=1e-4) and lo > 0 and gain.verdict == "better"
    assert pair.a.seeds == [1, 2, 3, 4] and pair.a.stats["mAP"].mean == pytest.approx(30.5)
    table = render_markdown([pair], "estimated", "true")
    assert table[2].startswith("| gcl | mAP | 30.5 ± 1.3 (seeds 1, 2, 3, 4) | 32.5 ± 1.5 (seeds 1, 2, 3) | +1.5 [")
    assert table[2].endswith("| 3 of 3 | better |")


def test_an_unknown_group_is_a_user_error_naming_the_groups(tmp_path, capsys):
    _archive(tmp_path, "est", {1: 30.0})
    code = main(["--archive", str(tmp_path), "--dataset", "synthetic", "--a", "est", "--b", "nope",
                 "--methods", "gcl"])
    err = capsys.readouterr().err
    assert code == 2 and "no settings group nope" in err and "groups found: est" in err and "Traceback" not in err


def test_the_report_section_pairs_the_listed_recipes_groups_with_the_current_settings(tmp_path):
    from genreid.report.groups import paired_recipe_section

    for method, base in (("gcl", 30.0), ("baseline", 20.0)):
        for seed in (1, 2, 3):
            archive_run(tmp_path, "synthetic", method, seed, {"mAP": base + seed, "R1": 50.0, "mINP": 5.0}, "cur",
                        RunFacts(recipe="synthetic_cpu"))
    for seed, value in ((1, 32.0), (2, 34.0), (3, 35.0)):  # +1, +2, +2 on gcl; the ablation ran gcl only
        archive_run(tmp_path, "synthetic", "gcl", seed, {"mAP": value, "R1": 50.0, "mINP": 5.0}, "abl",
                    RunFacts(recipe="ablation"))
    archive_run(tmp_path, "synthetic", "gcl", 1, {"mAP": 1.0, "R1": 1.0, "mINP": 1.0}, "lone",
                RunFacts(recipe="ablation"))
    lines = paired_recipe_section(tmp_path, "synthetic", ["baseline", "gcl"], "cur", ["ablation"])
    text = "\n".join(lines)
    assert "### synthetic: recipe `ablation` (settings `abl`) against these settings" in text
    assert "| gcl | mAP | 32.0 ± 1.0 (seeds 1, 2, 3) | 33.7 ± 1.5 (seeds 1, 2, 3) | +1.7 [" in text
    assert "`lone`" not in text  # one shared seed: no interval, not shown
    assert paired_recipe_section(tmp_path, "synthetic", ["gcl"], "cur", []) == []
    assert paired_recipe_section(tmp_path, "synthetic", ["gcl"], "cur", ["synthetic_cpu"]) == []  # itself


def test_a_paired_group_that_ran_two_methods_gets_its_own_verdicts(tmp_path):
    """The capped recipe's seeds judged among themselves: GCL against its warm-up encoder, beside the
    current settings' verdict."""
    from genreid.report.groups import paired_recipe_section

    for seed in (1, 2, 3):
        for method, base in (("gcl", 30.0), ("baseline", 20.0)):
            archive_run(tmp_path, "synthetic", method, seed, {"mAP": base + seed, "R1": 50.0, "mINP": 5.0}, "cur",
                        RunFacts(recipe="synthetic_cpu"))
        for method, value in (("gcl", 19.0 + seed), ("baseline", 20.0 + 2 * seed)):  # gcl behind on every seed
            archive_run(tmp_path, "synthetic", method, seed, {"mAP": value, "R1": 50.0, "mINP": 5.0}, "cap",
                        RunFacts(recipe="capped"))
    text = "\n".join(paired_recipe_section(tmp_path, "synthetic", ["baseline", "gcl"], "cur", ["capped"]))
    assert "Claims on the seeds of `capped` alone:" in text
    assert "GCL improves on its warm-up encoder (GCL vs baseline): **refuted** (mAP -3.0 [" in text

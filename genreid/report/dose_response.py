"""The dose-response table: GCL's gain over the control arms against the quality of the generator it
trained with (params/experiments/dose_response/, run by scripts/dose_response.py).

Each point is a generator budget (stage 2) crossed with a stage-3 length. The control arms load no
generator, so they run once per stage-3 length (in the ``default`` point of that length) and every point
of that length is paired with them by seed: both runs of a seed start from the same stage-1 encoder. A
point's x is the view fidelity of its stage-2 generator on SynthReID's true novel views (the mean over
the novel angles, 0 degrees left out: that one is a reconstruction), its y the paired gain with a 95 %
t-interval over seeds (:func:`genreid.report.tables.paired_gains`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from genreid.report.tables import Gain, ResultRow, Stat, paired_gains  # noqa: E402
from genreid.utils.atomic import atomic_path  # noqa: E402

FIDELITY_KEYS: tuple[tuple[str, str], ...] = (("silhouette_iou", "silhouette IoU"), ("rank1", "identity R1 (%)"))
GAIN_METRICS: tuple[str, ...] = ("mAP", "R1")
# (method, reference) pairs of the table; the Markdown shows mAP, the CSV every GAIN_METRICS entry
COMPARISONS: tuple[tuple[str, str], ...] = (("gcl", "control_aug"), ("gcl", "control_none"),
                                            ("gcl_plus", "control_aug"), ("gcl_plus", "control_none"))
# the ceiling: true novel views instead of G's (no generator), so it runs only in the default points
ORACLE_COMPARISONS: tuple[tuple[str, str], ...] = (("oracle_views", "control_aug"), ("oracle_views", "control_none"))
ALL_COMPARISONS = COMPARISONS + ORACLE_COMPARISONS
LABELS = {"gcl": "GCL", "gcl_plus": "GCL+", "oracle_views": "oracle_views", "control_aug": "control_aug",
          "control_none": "control_none"}
DEFAULT_BUDGET = "default"  # the budget every other budget of the same stage-3 length is paired with
GENERATOR_METHODS: tuple[str, ...] = ("gcl", "gcl_plus")  # the arms that train with a generator
RUN_FILE = "run.json"  # written last into each copied run: its presence marks the run done


@dataclass(frozen=True)
class PointRun:
    """One point of one seed: the test metrics of every method it evaluated and its stage-2 fidelity."""

    point: str
    budget: str  # the generator budget (the point's name without its stage-3 length)
    stage3_epochs: int
    seed: int
    metrics: dict[str, dict[str, float]]  # method -> {"mAP": ..., "R1": ...} (percent)
    fidelity: dict[str, float] | None = None  # FIDELITY_KEYS -> novel-view mean of the stage-2 generator


@dataclass
class DoseRow:
    """One point over its seeds."""

    point: str
    budget: str
    stage3_epochs: int
    seeds: list[int]
    fidelity: dict[str, Stat] = field(default_factory=dict)
    means: dict[str, Stat] = field(default_factory=dict)  # method -> its mAP over the point's seeds
    gains: dict[tuple[str, str], dict[str, Gain]] = field(default_factory=dict)  # (method, reference) -> metric
    # method -> metric -> the same method at the default budget and this stage-3 length, paired by seed:
    # what changing only the generator budget (or detaching the appearance code) does to that method
    vs_default: dict[str, dict[str, Gain]] = field(default_factory=dict)
    # default budget at a longer stage 3 only: (method, reference) -> the mAP gain over the reference at
    # this length minus the same seed's gain at the shortest length (the schedule's effect on the gap)
    vs_shortest: dict[tuple[str, str], Gain] = field(default_factory=dict)


def novel_view_fidelity(view_fidelity: dict[str, Any]) -> dict[str, float] | None:
    """The mean of each FIDELITY_KEYS metric over the novel angles of a ``view_fidelity.json``; None when
    the file says no true views exist (real data)."""
    if not view_fidelity.get("available"):
        return None
    rows = [r for r in view_fidelity["per_angle"] if int(r["angle"]) % 360 != 0]
    if not rows:
        raise ValueError("view_fidelity.json lists no novel angle (only 0 degrees)")
    return {key: statistics.fmean(float(r[key]) for r in rows) for key, _ in FIDELITY_KEYS}


def _stat(values: list[float]) -> Stat:
    return Stat(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


def _reference_runs(runs: list[PointRun], method: str, stage3_epochs: int) -> dict[int, dict[str, float]]:
    """seed -> the reference ``method``'s metrics among the runs of this stage-3 length; two runs of one
    seed that disagree are an error (the control arms must run once per stage-3 length)."""
    found: dict[int, dict[str, float]] = {}
    for run in runs:
        if run.stage3_epochs != stage3_epochs or method not in run.metrics:
            continue
        if run.seed in found and found[run.seed] != run.metrics[method]:
            raise ValueError(f"{method} ran twice with {stage3_epochs} stage-3 epochs for seed {run.seed}, with "
                             "different results; the reference of a stage-3 length must come from one point")
        found[run.seed] = run.metrics[method]
    return found


def dose_response_rows(runs: list[PointRun],
                       comparisons: tuple[tuple[str, str], ...] = ALL_COMPARISONS
                       ) -> list[DoseRow]:
    """One row per point (in the order the points first appear in ``runs``): fidelity over its seeds, each
    method's mean mAP and, per (method, reference), the gain paired by seed with the reference run of the
    same seed and stage-3 length (seeds without one are left out of that gain)."""
    by_point: dict[str, list[PointRun]] = {}
    for run in runs:
        by_point.setdefault(run.point, []).append(run)
    rows = []
    for point, point_runs in by_point.items():
        first = point_runs[0]
        if any((r.budget, r.stage3_epochs) != (first.budget, first.stage3_epochs) for r in point_runs):
            raise ValueError(f"point {point} is filed with several budgets or stage-3 lengths")
        row = DoseRow(point, first.budget, first.stage3_epochs, sorted(r.seed for r in point_runs))
        with_fidelity = [r.fidelity for r in point_runs if r.fidelity]
        for key, _ in FIDELITY_KEYS:
            if with_fidelity:
                row.fidelity[key] = _stat([f[key] for f in with_fidelity])
        methods = sorted({m for r in point_runs for m in r.metrics})
        row.means = {m: _stat([r.metrics[m]["mAP"] for r in point_runs if m in r.metrics]) for m in methods}
        for method, reference in comparisons:
            mine = {r.seed: r.metrics[method] for r in point_runs if method in r.metrics}
            if not mine:
                continue
            ref = _reference_runs(runs, reference, first.stage3_epochs)
            gains = paired_gains(_result_row(method, mine), _result_row(reference, ref), GAIN_METRICS)
            if gains:
                row.gains[(method, reference)] = gains
        rows.append(row)
    _pair_with_default_budget(rows, by_point)
    _pair_with_shortest_length(rows, by_point)
    return rows


def _seed_gaps(point_runs: list[PointRun], method: str, reference: str) -> ResultRow:
    """(method - reference) mAP per seed of one point, as a row :func:`paired_gains` can pair."""
    return _result_row(method, {r.seed: {"mAP": r.metrics[method]["mAP"] - r.metrics[reference]["mAP"]}
                                for r in point_runs if method in r.metrics and reference in r.metrics})


def _pair_with_shortest_length(rows: list[DoseRow], by_point: dict[str, list[PointRun]]) -> None:
    """Fill ``vs_shortest`` of the default-budget rows of a longer stage 3: per seed, (method - reference)
    at that length minus (method - reference) at the shortest length. The generator and the stage-1
    encoder are the same in both, so this isolates what the longer schedule does to the gap."""
    defaults = sorted((r for r in rows if r.budget == DEFAULT_BUDGET), key=lambda r: r.stage3_epochs)
    if len(defaults) < 2:
        return
    shortest = defaults[0]
    for row in defaults[1:]:
        for method, reference in ALL_COMPARISONS:
            gain = paired_gains(_seed_gaps(by_point[row.point], method, reference),
                                _seed_gaps(by_point[shortest.point], method, reference), ("mAP",)).get("mAP")
            if gain is not None:
                row.vs_shortest[(method, reference)] = gain


def _pair_with_default_budget(rows: list[DoseRow], by_point: dict[str, list[PointRun]]) -> None:
    """Fill ``vs_default`` of every row whose budget is not the default one: its GCL (GCL+) minus the
    default budget's GCL (GCL+) of the same seed and stage-3 length. Both start from the same stage-1
    encoder, so the difference isolates the generator budget (or the detached appearance code)."""
    default_points = {r.stage3_epochs: r.point for r in rows if r.budget == DEFAULT_BUDGET}
    for row in rows:
        reference_point = default_points.get(row.stage3_epochs)
        if row.budget == DEFAULT_BUDGET or reference_point is None:
            continue
        for method in GENERATOR_METHODS:
            mine = {r.seed: r.metrics[method] for r in by_point[row.point] if method in r.metrics}
            ref = {r.seed: r.metrics[method] for r in by_point[reference_point] if method in r.metrics}
            gains = paired_gains(_result_row(method, mine), _result_row(method, ref), GAIN_METRICS)
            if gains:
                row.vs_default[method] = gains


def _result_row(method: str, per_seed: dict[int, dict[str, float]]) -> ResultRow:
    return ResultRow(dataset="synthetic", method=method, setting="unsupervised", seeds=sorted(per_seed), stats={},
                     per_seed=per_seed)


def _fmt_stat(stat: Stat | None, digits: int) -> str:
    return "-" if stat is None else stat.format(digits)


def _fmt_gain(gain: Gain | None) -> str:
    if gain is None:
        return "-"
    return f"{gain.format(1)} ({gain.wins}/{gain.stat.n})"


def markdown_table(rows: list[DoseRow]) -> str:
    """The Markdown table: one line per point, mAP gains with their 95 % paired t-interval and the seeds won."""
    head = ["point", "generator budget", "stage-3 epochs", "seeds", "stage-2 silhouette IoU",
            "stage-2 identity R1 (%)", "GCL mAP", *(f"{LABELS[m]} − {LABELS[r]} mAP" for m, r in COMPARISONS),
            f"GCL − GCL at the {DEFAULT_BUDGET} budget mAP"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.point, row.budget, str(row.stage3_epochs), ", ".join(map(str, row.seeds)),
                 _fmt_stat(row.fidelity.get("silhouette_iou"), 3), _fmt_stat(row.fidelity.get("rank1"), 1),
                 _fmt_stat(row.means.get("gcl"), 1),
                 *(_fmt_gain(row.gains.get(pair, {}).get("mAP")) for pair in COMPARISONS),
                 _fmt_gain(row.vs_default.get("gcl", {}).get("mAP"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[DoseRow]) -> str:
    """Every number of the rows: fidelity mean/std, mean mAP per method, and per (method, reference, metric)
    the paired gain's mean, std, 95 % interval, seeds won and seeds paired (empty where undefined)."""
    header = ["point", "budget", "stage3_epochs", "n_seeds", "seeds"]
    header += [f"fidelity_{k}_{s}" for k, _ in FIDELITY_KEYS for s in ("mean", "std")]
    header += [f"{m}_mAP_mean" for m in LABELS]
    header += [f"{m}_minus_{r}_{metric}_{s}" for m, r in ALL_COMPARISONS for metric in GAIN_METRICS
               for s in ("mean", "std", "ci_low", "ci_high", "wins", "n")]
    header += [f"{m}_minus_{m}_at_{DEFAULT_BUDGET}_budget_{metric}_{s}" for m in GENERATOR_METHODS
               for metric in GAIN_METRICS for s in ("mean", "std", "ci_low", "ci_high", "wins", "n")]
    header += [f"{m}_minus_{r}_mAP_longer_minus_shortest_stage3_{s}" for m, r in ALL_COMPARISONS
               for s in ("mean", "std", "ci_low", "ci_high", "wins", "n")]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        rec: list[Any] = [row.point, row.budget, row.stage3_epochs, len(row.seeds), " ".join(map(str, row.seeds))]
        for key, _ in FIDELITY_KEYS:
            stat = row.fidelity.get(key)
            rec += [_num(stat.mean if stat else None), _num(stat.std if stat else None)]
        rec += [_num(row.means[m].mean if m in row.means else None) for m in LABELS]
        gains = [row.gains.get(pair, {}).get(metric) for pair in ALL_COMPARISONS for metric in GAIN_METRICS]
        gains += [row.vs_default.get(m, {}).get(metric) for m in GENERATOR_METHODS for metric in GAIN_METRICS]
        gains += [row.vs_shortest.get(pair) for pair in ALL_COMPARISONS]
        for gain in gains:
            ci = gain.ci95 if gain else None
            rec += [_num(gain.stat.mean if gain else None), _num(gain.stat.std if gain else None),
                    _num(ci[0] if ci else None), _num(ci[1] if ci else None),
                    gain.wins if gain else "", gain.stat.n if gain else ""]
        writer.writerow(rec)
    return buf.getvalue()


def _verdict(gain: Gain, one_seed: str = "one seed, no interval") -> str:
    """``Gain.verdict``, except that a single seed says so instead of 'not resolved'."""
    return one_seed if gain.ci95 is None else gain.verdict


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def findings(rows: list[DoseRow]) -> list[str]:
    """What the table says, one sentence per question, from the intervals alone: at which points a
    generator arm beats control_aug (and control_none), and what changing the generator budget or
    detaching the appearance code does to GCL against the default budget. A difference is called a win or
    a loss only when its 95 % interval excludes zero; a point with one seed has no interval."""
    out = []
    for method in GENERATOR_METHODS:
        for reference in ("control_aug", "control_none"):
            by_verdict: dict[str, list[str]] = {}
            for row in rows:
                gain = row.gains.get((method, reference), {}).get("mAP")
                if gain is not None:
                    key = _verdict(gain, one_seed="one seed")
                    by_verdict.setdefault(key, []).append(f"`{row.point}` ({gain.format(1)})")
            if not by_verdict:
                continue
            better = by_verdict.pop("better", [])
            where = _listed(better) if better else "no point"
            head = f"{LABELS[method]} is resolved better than {reference} at {where}"
            rest = [f"{'resolved worse' if k == 'worse' else k} at {_listed(v)}"
                    for k, v in sorted(by_verdict.items())]
            out.append(head + (": " + "; ".join(rest) if rest else "") + ".")
    for row in rows:
        for method, reference in ORACLE_COMPARISONS:
            gain = row.gains.get((method, reference), {}).get("mAP")
            if gain is not None:
                out.append(f"The ceiling at {row.stage3_epochs} stage-3 epochs: oracle_views (true novel views, no "
                           f"generator) minus {reference}: {gain.format(1)} mAP ({gain.wins}/{gain.stat.n} seeds "
                           f"higher; {_verdict(gain)}).")
    defaults = {r.stage3_epochs: r for r in rows if r.budget == DEFAULT_BUDGET}
    for row in rows:
        gain = row.vs_default.get("gcl", {}).get("mAP")
        if gain is None:
            continue
        out.append(f"`{row.point}` {_question(row, defaults.get(row.stage3_epochs))}: GCL minus GCL at the "
                   f"{DEFAULT_BUDGET} budget ({row.stage3_epochs} stage-3 epochs, paired by seed): {gain.format(1)} "
                   f"mAP ({gain.wins}/{gain.stat.n} seeds higher; {_verdict(gain)}).")
    for row in rows:
        for (method, reference), gain in row.vs_shortest.items():
            if method not in ("gcl", "oracle_views"):
                continue
            out.append(f"The schedule (`{row.point}` against the shortest stage 3, same generator): {LABELS[method]} "
                       f"minus {reference} moves by {gain.format(1)} mAP ({gain.wins}/{gain.stat.n} seeds in "
                       f"favour of {LABELS[method]}; {_verdict(gain)}).")
    return out


def _gain_list(items: list[tuple[str, Gain]]) -> str:
    return _listed([f"{gain.format(1)} ({where}, {_verdict(gain)})" for where, gain in items])


def _with_interval(rows: list[DoseRow], pick: Callable[[DoseRow], Gain | None]) -> list[tuple[DoseRow, Gain]]:
    """The rows whose picked gain exists and has an interval (two seeds or more), with that gain."""
    picked = [(row, pick(row)) for row in rows]
    return [(row, gain) for row, gain in picked if gain is not None and gain.ci95 is not None]


def _by_length(pairs: list[tuple[DoseRow, Gain]]) -> list[tuple[str, Gain]]:
    return [(f"{row.stage3_epochs} stage-3 epochs", gain) for row, gain in pairs]


def conclusions(rows: list[DoseRow]) -> list[str]:
    """The experiment's answers, one sentence per question, built from the same intervals as
    :func:`findings`: which point, if any, makes GCL beat control_aug, and for each explanation of GCL's
    loss (weak generated views, the GAN's gradients into E_id, a short stage 3) whether the data support
    it. A question whose points did not run (or ran one seed) is left out rather than guessed."""
    def gain(method: str, reference: str) -> Callable[[DoseRow], Gain | None]:
        return lambda row: row.gains.get((method, reference), {}).get("mAP")

    def gcl_vs_default(detached: bool) -> Callable[[DoseRow], Gain | None]:
        return lambda row: row.vs_default.get("gcl", {}).get("mAP") if (row.budget == "detach") == detached else None

    out: list[str] = []
    vs_aug = _with_interval(rows, gain("gcl", "control_aug"))
    if vs_aug:
        winners = [f"`{r.point}`" for r, g in vs_aug if g.verdict == "better"]
        out.append(f"Which regime makes GCL beat control_aug: {_listed(winners) if winners else 'none'} of the "
                   f"{len(vs_aug)} points with an interval.")
    oracle = _by_length(_with_interval(rows, gain("oracle_views", "control_aug")))
    ceiling_beats = [w for w, g in oracle if g.verdict == "better"]
    if oracle:
        if ceiling_beats:
            head = (f"Weak generated views: possible. True novel views beat control_aug at {_listed(ceiling_beats)}, "
                    "so a good enough generator could close the gap")
        else:
            head = ("Weak generated views: not the explanation of the gap to control_aug. Even true novel views "
                    "(oracle_views) do not beat it")
        line = f"{head}: oracle_views minus control_aug {_gain_list(oracle)}"
        budgets = _with_interval(rows, gcl_vs_default(detached=False))
        if budgets:
            r1 = [r.fidelity["rank1"].mean for r, _ in budgets if "rank1" in r.fidelity]
            moved = [f"`{r.point}`" for r, g in budgets if g.verdict != "not resolved"]
            spread = ""
            if r1:
                low, high = f"{min(r1):.0f}", f"{max(r1):.0f}"
                spread = f" (stage-2 identity R1 {low if low == high else f'{low} to {high}'} %)"
            line += (f"; against the default budget, the other generator budgets{spread} move GCL by a resolved "
                     f"amount at {_listed(moved) if moved else 'no point'}")
        out.append(line + ".")
    detach = _by_length(_with_interval(rows, gcl_vs_default(detached=True)))
    if detach:
        helped = any(g.verdict == "better" for _, g in detach)
        out.append(f"The GAN's gradients into E_id: {'supported' if helped else 'not supported'}. Detaching the "
                   f"appearance code moves GCL by {_gain_list(detach)} mAP against the default budget.")
    longer = _with_interval(rows, lambda row: row.vs_shortest.get(("gcl", "control_aug")))
    schedule = [(f"`{r.point}`", g) for r, g in longer]
    if schedule:
        helped = any(g.verdict == "better" for _, g in schedule)
        out.append(f"A short stage 3: {'supported' if helped else 'not supported'}. A longer stage 3 moves GCL "
                   f"minus control_aug by {_gain_list(schedule)} mAP.")
    over_none = _by_length(_with_interval(rows, gain("oracle_views", "control_none")))
    if oracle and not ceiling_beats and over_none:
        out.append("What is left is the kind of positive view: in this regime a true rotated view of the same "
                   "person does not beat traditional augmentation as the positive (above), while against no "
                   f"positive view it gains {_gain_list(over_none)} mAP.")
    return out


def _question(row: DoseRow, default: DoseRow | None) -> str:
    """Which explanation of GCL's loss a budget tests, with the fidelity that makes it a test."""
    if row.budget == "detach":
        return "(does the GAN's gradient into E_id hurt it?)"
    mine, ref = row.fidelity.get("rank1"), default.fidelity.get("rank1") if default else None
    if mine is None or ref is None:
        return "(are the generated views too weak?)"
    return (f"(are the generated views too weak? stage-2 identity R1 {mine.mean:.1f} % against {ref.mean:.1f} % "
            f"at the {DEFAULT_BUDGET} budget)")


def _num(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.4f}"


MARKERS = {4: "o", 12: "s"}
LINESTYLES = {4: ":", 12: "-."}


def plot_dose_response(rows: list[DoseRow], out_png: str | os.PathLike) -> Path:
    """GCL's paired mAP gain (rows: over control_aug, over control_none) against the stage-2 generator's
    view fidelity (columns: silhouette IoU, identity R1); one colour per budget, one marker per stage-3
    length; vertical bars the 95 % interval, horizontal bars the fidelity's std over seeds. A black
    horizontal line (grey band: its interval) is oracle_views' gain over the same reference: where GCL
    would sit with a perfect generator."""
    budgets = list(dict.fromkeys(r.budget for r in rows))
    colours = {b: plt.get_cmap("tab10")(i % 10) for i, b in enumerate(budgets)}
    references = ("control_aug", "control_none")
    fig, axes = plt.subplots(len(references), len(FIDELITY_KEYS), figsize=(11, 8), squeeze=False)
    for i, reference in enumerate(references):
        for j, (key, label) in enumerate(FIDELITY_KEYS):
            ax = axes[i][j]
            ax.axhline(0.0, color="grey", lw=0.8, ls="--")
            for row in rows:  # the ceiling of each stage-3 length: true views instead of G's
                oracle = row.gains.get(("oracle_views", reference), {}).get("mAP")
                if oracle is None:
                    continue
                ax.axhline(oracle.stat.mean, color="black", lw=1.0, ls=LINESTYLES.get(row.stage3_epochs, "-."),
                           label=f"oracle_views (true views), {row.stage3_epochs} ep.")
                if oracle.ci95 is not None:
                    ax.axhspan(*oracle.ci95, color="black", alpha=0.06)
            for row in rows:
                gain = row.gains.get(("gcl", reference), {}).get("mAP")
                fid = row.fidelity.get(key)
                if gain is None or fid is None:
                    continue
                ci = gain.ci95
                yerr = None if ci is None else [[gain.stat.mean - ci[0]], [ci[1] - gain.stat.mean]]
                ax.errorbar([fid.mean], [gain.stat.mean], yerr=yerr, xerr=None if fid.std is None else [fid.std],
                            fmt=MARKERS.get(row.stage3_epochs, "^"), color=colours[row.budget], capsize=3, ms=7,
                            label=f"{row.budget}, {row.stage3_epochs} ep.")
            ax.set_xlabel(f"stage-2 view fidelity: {label}")
            ax.set_ylabel(f"GCL − {reference} mAP (points)")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8)
    fig.suptitle("GCL's paired gain against the generator's view fidelity (95 % t-intervals over seeds)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


def read_point_runs(out_dir: str | os.PathLike) -> list[PointRun]:
    """The finished runs copied under ``out_dir/<point>/seed_<n>/`` (those with a ``run.json``), in the
    order of their ``run.json`` ``order`` field, then by point name and seed."""
    found = []
    for run_file in sorted(Path(out_dir).glob(f"*/seed_*/{RUN_FILE}")):
        meta = json.loads(run_file.read_text())
        folder = run_file.parent
        metrics = {}
        for method in meta["methods"]:
            values = json.loads((folder / method / "metrics.json").read_text())
            metrics[method] = {k: float(values[k]) for k in GAIN_METRICS}
        fidelity_path = folder / "pretrain" / "view_fidelity.json"
        fidelity = novel_view_fidelity(json.loads(fidelity_path.read_text())) if fidelity_path.is_file() else None
        found.append((int(meta.get("order", 0)), PointRun(meta["point"], meta["budget"], int(meta["stage3_epochs"]),
                                                          int(meta["seed"]), metrics, fidelity)))
    found.sort(key=lambda item: (item[0], item[1].point, item[1].seed))
    return [run for _, run in found]

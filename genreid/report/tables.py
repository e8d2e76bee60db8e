"""Result rows: seeds aggregated, compared with the paper targets, rendered as Markdown and CSV.

A row is PASS/FAIL only against targets marked ``checked`` in the registry; unverified
numbers are shown for reference with their delta and never decide a status.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field

from genreid.report.seeds import SeedRun
from genreid.report.targets import METRICS, Target

TABLE_METRICS: tuple[str, ...] = ("mAP", "R1", "R5", "R10", "mINP")
TARGET_COLUMNS: tuple[str, ...] = ("mAP", "R1")  # the papers' headline pair, shown in the Markdown table
PASS, FAIL = "PASS", "FAIL"
UNVERIFIED = "reference (unverified)"
NO_TARGET = "no published target"


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # sample std (ddof 1); None with a single seed
    n: int

    def format(self, digits: int = 1) -> str:
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


@dataclass
class ResultRow:
    dataset: str
    method: str
    setting: str
    seeds: list[int]
    stats: dict[str, Stat]
    targets: dict[str, Target] = field(default_factory=dict)
    per_seed: dict[int, dict[str, float]] = field(default_factory=dict)  # for gains paired by seed
    status: str = NO_TARGET
    failures: list[str] = field(default_factory=list)

    def delta(self, metric: str) -> float | None:
        """Reproduced mean minus the paper's value; None where either is unknown."""
        target = self.targets.get(metric)
        stat = self.stats.get(metric)
        if target is None or target.value is None or stat is None:
            return None
        return stat.mean - target.value


def aggregate(runs: list[SeedRun], metrics: tuple[str, ...] = TABLE_METRICS) -> dict[str, Stat]:
    """Mean and sample std per metric over the seeds that reported it."""
    out: dict[str, Stat] = {}
    for metric in metrics:
        values = [r.metrics[metric] for r in runs if metric in r.metrics and math.isfinite(r.metrics[metric])]
        if not values:
            continue
        std = statistics.stdev(values) if len(values) > 1 else None
        out[metric] = Stat(mean=statistics.fmean(values), std=std, n=len(values))
    return out


def judge(stats: dict[str, Stat], targets: dict[str, Target], tolerance: float) -> tuple[str, list[str]]:
    """PASS when every checked target is met within ``tolerance`` points; FAIL lists the misses."""
    checked = {m: t for m, t in targets.items() if t.checked and t.value is not None}
    if not checked:
        known = any(t.value is not None for t in targets.values())
        return (UNVERIFIED if known else NO_TARGET), []
    failures = []
    for metric, target in checked.items():
        stat = stats.get(metric)
        if stat is None:
            failures.append(f"{metric} not measured")
        elif stat.mean < target.value - tolerance:
            failures.append(f"{metric} {stat.mean:.1f} < {target.value:.1f} - {tolerance:g}")
    return (FAIL if failures else PASS), failures


def build_row(dataset: str, method: str, setting: str, runs: list[SeedRun], targets: dict[str, Target],
              tolerance: float) -> ResultRow:
    stats = aggregate(runs)
    status, failures = judge(stats, targets, tolerance)
    return ResultRow(dataset=dataset, method=method, setting=setting, seeds=[r.seed for r in runs],
                     stats=stats, targets=targets, status=status, failures=failures,
                     per_seed={r.seed: dict(r.metrics) for r in runs})


def _fmt(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown_table(rows: list[ResultRow]) -> str:
    """The results table: one line per dataset and method."""
    head = ["dataset", "setting", "method", "seeds", *TABLE_METRICS, "paper mAP / R1", "delta mAP / R1", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.dataset, row.setting, row.method, str(len(row.seeds))]
        cells += [row.stats[m].format() if m in row.stats else "-" for m in TABLE_METRICS]
        cells.append(" / ".join(_fmt(row.targets[m].value) if m in row.targets else "-" for m in TARGET_COLUMNS))
        cells.append(" / ".join(_fmt(row.delta(m), signed=True) for m in TARGET_COLUMNS))
        status = row.status + (f": {'; '.join(row.failures)}" if row.failures else "")
        cells.append(status)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows: list[ResultRow]) -> str:
    """Machine-readable summary: every metric's mean/std, every target, delta and provenance."""
    fields = ["dataset", "setting", "method", "n_seeds", "seeds"]
    for m in TABLE_METRICS:
        fields += [f"{m}_mean", f"{m}_std"]
    for m in METRICS:
        fields += [f"target_{m}", f"target_{m}_checked", f"delta_{m}"]
    fields += ["status", "failures", "target_provenance"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        rec: dict[str, object] = {"dataset": row.dataset, "setting": row.setting, "method": row.method,
                                  "n_seeds": len(row.seeds), "seeds": " ".join(map(str, row.seeds))}
        for m in TABLE_METRICS:
            stat = row.stats.get(m)
            rec[f"{m}_mean"] = "" if stat is None else f"{stat.mean:.4f}"
            rec[f"{m}_std"] = "" if stat is None or stat.std is None else f"{stat.std:.4f}"
        for m in METRICS:
            target = row.targets.get(m)
            rec[f"target_{m}"] = "" if target is None or target.value is None else target.value
            rec[f"target_{m}_checked"] = "" if target is None else target.checked
            delta = row.delta(m)
            rec[f"delta_{m}"] = "" if delta is None else f"{delta:.4f}"
        rec["status"] = row.status
        rec["failures"] = "; ".join(row.failures)
        rec["target_provenance"] = " | ".join(sorted({t.provenance for t in row.targets.values()}))
        writer.writerow(rec)
    return buf.getvalue()


@dataclass(frozen=True)
class Gain:
    """A method minus the reference, paired by seed: the seed-to-seed spread of the difference is
    what says whether a gain is real (both runs of a seed share the warm-up encoder)."""
    stat: Stat
    wins: int  # seeds where the method beat the reference

    @property
    def ci95(self) -> tuple[float, float] | None:
        """95 % paired t-interval of the mean difference (t with n-1 degrees of freedom); None below 2 seeds."""
        if self.stat.std is None or self.stat.n < 2:
            return None
        from scipy.stats import t

        half = float(t.ppf(0.975, self.stat.n - 1)) * self.stat.std / self.stat.n ** 0.5
        return self.stat.mean - half, self.stat.mean + half

    @property
    def verdict(self) -> str:
        """'better' / 'worse' only when the interval excludes zero; 'not resolved' otherwise."""
        ci = self.ci95
        if ci is None or ci[0] <= 0.0 <= ci[1]:
            return "not resolved"
        return "better" if ci[0] > 0 else "worse"

    def format(self, digits: int = 1) -> str:
        if self.stat.std is None:
            return f"{self.stat.mean:+.{digits}f}"
        lo, hi = self.ci95
        return f"{self.stat.mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def paired_gains(row: ResultRow, ref: ResultRow, metrics: tuple[str, ...] = ("mAP", "R1")) -> dict[str, Gain]:
    """``row`` minus ``ref`` per metric over the seeds both ran (paired by seed)."""
    common = sorted(set(row.per_seed) & set(ref.per_seed))
    gains: dict[str, Gain] = {}
    for m in metrics:
        diffs = [row.per_seed[s][m] - ref.per_seed[s][m] for s in common
                 if m in row.per_seed[s] and m in ref.per_seed[s]]
        if diffs:
            std = statistics.stdev(diffs) if len(diffs) > 1 else None
            gains[m] = Gain(Stat(statistics.fmean(diffs), std, len(diffs)), sum(d > 0 for d in diffs))
    return gains

"""The ``report`` stage's work: every evaluated (dataset, method) -> results/README.md, summary.csv, plots.

Inputs are the evaluate stages' ``results/<ds>/<method>/metrics.json`` and ``cmc.csv`` and the
training stages' dvclive folders; nothing is recomputed here. Seeds are gathered through the
archive in :mod:`genreid.report.seeds`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genreid.errors import GenreidError
from genreid.report import plots
from genreid.report.seeds import archive_run, collect_runs
from genreid.report.tables import ResultRow, build_row, csv_text, gains_over, markdown_table
from genreid.report.targets import TargetRegistry
from genreid.utils.atomic import write_text

# Accepted spellings of each metric in a metrics.json (first found wins); values are percent.
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "mAP": ("mAP", "map"),
    "R1": ("R1", "rank1", "rank-1", "top1"),
    "R5": ("R5", "rank5", "rank-5", "top5"),
    "R10": ("R10", "rank10", "rank-10", "top10"),
    "mINP": ("mINP", "minp"),
}
TRAINING_RUNS: tuple[str, ...] = ("baseline", "pretrain", "gcl", "gcl_plus")
PICTURES: tuple[tuple[str, str], ...] = (
    ("meshes/overlay.png", "mesh renders over their images"),
    ("dataset/contact_sheet.png", "SynthReID contact sheet"),
    ("pretrain/views.png", "generator sheet after pre-training (novel views)"),
)


@dataclass
class ReportOutputs:
    rows: list[ResultRow]
    readme: Path
    summary_csv: Path
    figures: dict[str, Path] = field(default_factory=dict)
    other_settings: list[Path] = field(default_factory=list)


def read_metrics(path: str | os.PathLike) -> tuple[dict[str, float], int | None]:
    """Canonical metrics (percent) and the recorded seed from an evaluate stage's metrics.json."""
    path = Path(path)
    if not path.is_file():
        raise GenreidError(f"metrics file {path} is missing",
                           "run its evaluate stage first (`dvc repro`), or drop the method from eval.methods")
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GenreidError(f"metrics file {path} is not valid JSON ({exc})", "rerun its evaluate stage") from exc
    block = raw.get("test", raw) if isinstance(raw.get("test"), dict) else raw
    metrics: dict[str, float] = {}
    for name, keys in METRIC_KEYS.items():
        for key in keys:
            if isinstance(block.get(key), (int, float)):
                metrics[name] = float(block[key])
                break
    if "mAP" not in metrics or "R1" not in metrics:
        raise GenreidError(f"metrics file {path} has no mAP / R1 (keys: {sorted(block)})",
                           "rerun its evaluate stage with the current code")
    seed = raw.get("seed", (raw.get("provenance") or {}).get("seed"))
    return metrics, (int(seed) if seed is not None else None)


def build_report(results_dir: str | os.PathLike, datasets: list[str], methods: list[str],
                 settings: dict[str, str], seed: int, fingerprint: str, registry: TargetRegistry,
                 tolerance: float, targets_path: str = "genreid/report/targets.yaml") -> ReportOutputs:
    """Archive this run's seed, aggregate all seeds of the same settings, write table, CSV and figures."""
    results = Path(results_dir)
    archive = results / "seeds"
    rows: list[ResultRow] = []
    other_settings: list[Path] = []
    curves: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for ds in datasets:
        setting = settings.get(ds, "unsupervised")
        for method in methods:
            metrics, recorded_seed = read_metrics(results / ds / method / "metrics.json")
            archive_run(archive, ds, method, recorded_seed if recorded_seed is not None else seed,
                        metrics, fingerprint)
            runs, other = collect_runs(archive, ds, method, fingerprint)
            other_settings += other
            rows.append(build_row(ds, method, setting, runs, registry.lookup(method, ds, setting), tolerance))
            cmc = results / ds / method / "cmc.csv"
            if cmc.is_file():
                curves.setdefault(ds, {})[method] = plots.read_cmc(cmc)
    figures = _write_figures(results, datasets, curves)
    summary = write_text(results / "summary.csv", csv_text(rows))
    readme = write_text(results / "README.md",
                        render_readme(rows, results, datasets, figures, fingerprint, tolerance,
                                      other_settings, targets_path))
    return ReportOutputs(rows=rows, readme=readme, summary_csv=summary, figures=figures,
                         other_settings=other_settings)


def _write_figures(results: Path, datasets: list[str],
                   curves: dict[str, dict[str, tuple[list[int], list[float]]]]) -> dict[str, Path]:
    out_dir = results / "plots"
    figures: dict[str, Path] = {}
    plots.write_cmc_csv(curves, out_dir / "cmc.csv")
    if curves:
        figures["cmc"] = plots.plot_cmc(curves, out_dir / "cmc.png")
    series: list[plots.Series] = []
    for ds in datasets:
        for run in TRAINING_RUNS:
            series += plots.read_dvclive(results / ds / run / "train", ds, run)
    losses, validation, pseudo = plots.split_series(series)
    plots.write_series_csv(losses + validation, out_dir / "training.csv")
    plots.write_series_csv(pseudo, out_dir / "pseudo_labels.csv")
    for name, chosen, title, by_metric in (("losses", losses, "training losses", False),
                                           ("validation", validation, "validation during training", False),
                                           ("pseudo_labels", pseudo, "pseudo-label quality per epoch", True)):
        png = plots.plot_series_grid(chosen, out_dir / f"{name}.png", title, panel_by_metric=by_metric)
        if png is not None:
            figures[name] = png
    return figures


def render_readme(rows: list[ResultRow], results: Path, datasets: list[str], figures: dict[str, Path],
                  fingerprint: str, tolerance: float, other_settings: list[Path], targets_path: str) -> str:
    seeds = sorted({s for r in rows for s in r.seeds})
    lines = [
        "# Results",
        "",
        "Written by the `report` stage of `dvc repro`; do not edit by hand. Metrics in percent on the",
        "test split (query/gallery), mean ± sample std over seeds when several ran with the same settings.",
        f"Settings fingerprint `{fingerprint}` (every param except seed, runtime and report); "
        f"seeds: {', '.join(map(str, seeds))}.",
        "",
        markdown_table(rows),
        f"Status is PASS/FAIL only against targets marked `checked` in `{targets_path}` "
        f"(a run passes when it is at most {tolerance:g} points below); other published numbers are",
        "shown for reference with their delta. The baseline row is the stage-1 Cluster-Contrast-style warm-up,",
        "compared with Cluster Contrast's own published numbers. Full precision and every target: "
        "[summary.csv](summary.csv).",
        "",
    ]
    gains = gains_over(rows)
    if gains:
        lines += ["## Does generated variance help? (gain over the stage-1 baseline)", "",
                  "| dataset | method | mAP gain | R1 gain |", "|---|---|---|---|"]
        lines += [f"| {ds} | {m} | {g.get('mAP', float('nan')):+.1f} | {g.get('R1', float('nan')):+.1f} |"
                  for ds, m, g in gains]
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{name}]({path.relative_to(results).as_posix()})" for name, path in figures.items()]
        lines += ["", "The same curves, comparable across experiments: `dvc plots show` (or `dvc plots diff`).", ""]
    lines += _pictures(results, datasets, rows)
    lines += _provenance(rows)
    if other_settings:
        lines += ["## Archived seeds with other settings (not averaged)", ""]
        lines += [f"- `{p.relative_to(results).as_posix()}`" for p in sorted(other_settings)]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _pictures(results: Path, datasets: list[str], rows: list[ResultRow]) -> list[str]:
    lines: list[str] = []
    for ds in datasets:
        found = [(f"{ds}/{rel}", what) for rel, what in PICTURES if (results / ds / rel).is_file()]
        found += [(f"{ds}/{r.method}/ranked_lists.png", f"ranked lists, {r.method} (best and worst queries)")
                  for r in rows if r.dataset == ds and (results / ds / r.method / "ranked_lists.png").is_file()]
        if found:
            lines += [f"## Pictures: {ds}", ""] + [f"- [{what}]({rel})" for rel, what in found] + [""]
    return lines


def _provenance(rows: list[ResultRow]) -> list[str]:
    lines = ["## Paper targets used", ""]
    seen = False
    for row in rows:
        for metric, target in row.targets.items():
            if target.value is None:
                continue
            seen = True
            flag = "checked" if target.checked else "unverified"
            lines.append(f"- {row.dataset} / {row.setting} / {row.method} / {metric} = {target.value:g} "
                         f"({flag}): {target.provenance}")
    if not seen:
        lines.append("None: no published number exists for these datasets (SynthReID is defined by this harness).")
    return lines + [""]

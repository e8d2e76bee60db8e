"""Stage ``report``: every collected dataset -> results/README.md, results/summary.csv, results/plots/.

Inputs are the ``collect@<ds>`` outputs (``results/collected/<ds>.json``); nothing is recomputed
here, so a change of report.tolerance or of the targets registry only rewrites the tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from genreid.registry import stage3_methods
from genreid.report import claims, fidelity, plots
from genreid.report.collect import CollectedDataset, load_collected, machines_text
from genreid.report.groups import paired_recipe_section
from genreid.report.seeds import settings_groups
from genreid.report.tables import ResultRow, build_row, csv_text, markdown_table
from genreid.report.targets import TargetRegistry
from genreid.utils.atomic import write_json, write_text


@dataclass
class ReportOutputs:
    rows: list[ResultRow]
    readme: Path
    summary_csv: Path
    figures: dict[str, Path] = field(default_factory=dict)


def build_report(results_dir: str | os.PathLike, datasets: list[str], registry: TargetRegistry, tolerance: float,
                 targets_path: str = "genreid/report/targets.yaml", preamble: list[str] | None = None,
                 paired_recipes: list[str] | None = None) -> ReportOutputs:
    """Aggregate seeds per (dataset, method), compare with the registry, write table, CSV and figures;
    ``preamble`` (markdown lines, e.g. :func:`genreid.report.regime.regime_lines`) opens the README."""
    results = Path(results_dir)
    collected = [load_collected(results, ds) for ds in datasets]
    rows = [build_row(c.dataset, m.method, c.setting, m.runs, registry.lookup(m.method, c.dataset, c.setting),
                      tolerance)
            for c in collected for m in sorted(c.methods, key=lambda m: claims.method_rank(m.method))]
    mark_procedural_body(rows, {c.dataset for c in collected if c.procedural_body})
    figures = write_figures(results / "plots", collected)
    summary = write_text(results / "summary.csv", csv_text(rows))
    write_json(results / "metrics.json", headline_metrics(rows))
    readme = write_text(results / "README.md", render_readme(rows, results, collected, figures, tolerance,
                                                             targets_path, preamble or [], paired_recipes or []))
    return ReportOutputs(rows=rows, readme=readme, summary_csv=summary, figures=figures)


PROCEDURAL_BODY = "procedural body (not the paper's SMPL)"


def mark_procedural_body(rows: list[ResultRow], datasets: set[str]) -> None:
    """Prefix the status of mesh-based rows (the methods whose generator is trained on mesh renders) on
    datasets rendered with the procedural body."""
    mesh_methods = {m.name for m in stage3_methods() if m.needs_generator}
    for row in rows:
        if row.dataset in datasets and row.method in mesh_methods:
            row.status = f"{PROCEDURAL_BODY}; {row.status}"


def headline_metrics(rows: list[ResultRow]) -> dict[str, dict[str, dict[str, float | int]]]:
    """``{dataset: {method: {mAP, R1, R5, R10, mINP (means), n_seeds}}}``: the DVC metrics file that
    `dvc exp show` / `dvc exp diff` compare across experiments (one column per number)."""
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for row in rows:
        entry: dict[str, float | int] = {m: round(stat.mean, 2) for m, stat in row.stats.items()}
        entry["n_seeds"] = len(row.seeds)
        out.setdefault(row.dataset, {})[row.method] = entry
    return out


def write_figures(out_dir: Path, collected: list[CollectedDataset]) -> dict[str, Path]:
    """PNGs for the README and long-format CSVs for `dvc plots show`; empty figures are skipped."""
    curves = {c.dataset: c.cmc for c in collected if c.cmc}
    series = [s for c in collected for s in c.series]
    plots.write_cmc_csv(curves, out_dir / "cmc.csv")
    figures: dict[str, Path] = {}
    if curves:
        figures["cmc"] = plots.plot_cmc(curves, out_dir / "cmc.png")
    for name, stage, content, title in plots.STAGE_FIGURES:
        rows = plots.stage_rows(series, stage, content)
        plots.write_stage_csv(rows, out_dir / f"{name}.csv")
        png = plots.plot_stage(rows, out_dir / f"{name}.png", title)
        if png is not None:
            figures[name] = png
        else:
            (out_dir / f"{name}.png").unlink(missing_ok=True)
    chosen = fidelity_dataset(collected)
    figures["view_fidelity"] = fidelity.plot_view_fidelity(
        chosen or (collected[0].dataset if collected else "-"),
        next((c.view_fidelity for c in collected if c.dataset == chosen), {}), out_dir / "view_fidelity.png")
    return figures


def fidelity_dataset(collected: list[CollectedDataset]) -> str | None:
    """The dataset drawn in view_fidelity.png: the first with measured views (only SynthReID has them)."""
    return next((c.dataset for c in collected if any(f.get("available") for f in c.view_fidelity.values())), None)


def machines_line(results: Path, collected: list[CollectedDataset]) -> str:
    """On which CPUs the reported seeds ran, as their seed records say (results differ across CPU types:
    docs/reproducibility.md)."""
    machines: dict[str, set[int]] = {}
    for c in collected:
        for m in c.methods:
            group = settings_groups(results / "seeds", c.dataset, m.method).get(c.fingerprint, {})
            for label, seeds in group.get("machines", {}).items():
                machines.setdefault(label, set()).update(seeds)
    if not machines:
        return ""
    return "Ran on: " + machines_text({k: sorted(v) for k, v in machines.items()}) + "."


def render_readme(rows: list[ResultRow], results: Path, collected: list[CollectedDataset],
                  figures: dict[str, Path], tolerance: float, targets_path: str, preamble: list[str],
                  paired_recipes: list[str]) -> str:
    seeds = sorted({s for r in rows for s in r.seeds})
    prints = sorted({c.fingerprint for c in collected})
    lines = [
        "# Results",
        "",
        "Written by the `report` stage of `dvc repro`; do not edit by hand. Metrics in percent on the",
        "test split (query/gallery), mean ± sample std over seeds when several ran with the same settings",
        "(README.md at the repository root, \"Experiments\", says how to add seeds).",
        "",
        *preamble,
        f"Settings fingerprint {', '.join(f'`{p}`' for p in prints)} (every param except seed, report and "
        f"runtime, but for an instruction-set cap); {len(seeds)} seed(s) archived with these settings: "
        f"{', '.join(map(str, seeds))}.",
        *[line for line in (machines_line(results, collected),) if line],
        "",
        markdown_table(rows),
        f"Status is PASS/FAIL only against targets marked `checked` in `{targets_path}` "
        f"(a run passes when it is at most {tolerance:g} point(s) below); other published numbers are",
        "shown for reference with their delta. The baseline row is the stage-1 Cluster-Contrast-style warm-up,",
        "compared with Cluster Contrast's own published numbers. Full precision and every target: "
        "[summary.csv](summary.csv).",
        "",
    ]
    if any(r.setting != "unsupervised" for r in rows):  # UDA rows (docs/usage.md#unsupervised-domain-adaptation)
        lines += ["Settings `from_<source>` are unsupervised domain adaptation: `direct` is the encoder trained with "
                  "labels on <source> (stage `source`) evaluated on the target as is (direct transfer); the "
                  "baseline, GCL and GCL+ rows start from it and train on the unlabelled target only.", ""]
    lines += claims.render_section(rows)
    lines += _selection(collected)
    lines += _pseudo_labels(collected)
    for c in collected:
        shown = figures.get("view_fidelity") if c.dataset == fidelity_dataset(collected) else None
        lines += fidelity.render_section(c.dataset, c.view_fidelity,
                                         shown.relative_to(results).as_posix() if shown else None)
    lines += _mesh_accuracy(collected)
    for c in collected:
        lines += paired_recipe_section(results / "seeds", c.dataset, [m.method for m in c.methods], c.fingerprint,
                                       paired_recipes)
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{name}]({path.relative_to(results).as_posix()})" for name, path in figures.items()]
        lines += ["", "The same curves, comparable across experiments: `dvc plots show` (or `dvc plots diff`).", ""]
    for c in collected:
        if c.pictures:
            lines += [f"## Pictures: {c.dataset}", ""] + [f"- [{what}]({rel})" for rel, what in c.pictures] + [""]
    lines += _provenance(rows)
    others = sorted({p for c in collected for m in c.methods for p in m.other_settings})
    if others:
        lines += ["## Archived seeds with other settings (not averaged)", "",
                  "Each folder holds the seeds of one settings fingerprint; only the current one above is "
                  "averaged.", ""] + [f"- `{p}`" for p in others] + [""]
    return "\n".join(lines).rstrip() + "\n"


SELECTION_LABELS = {"val_map": "validation mAP", "last_epoch": "last epoch",  # genreid.engine.selection
                    "authors_weights": "authors' stage-1 weights"}  # genreid.warmup.imported


def _criterion(selected_on: str | None) -> str:
    return SELECTION_LABELS.get(selected_on or "", selected_on or "-")


def _selection(collected: list[CollectedDataset]) -> list[str]:
    """Which epoch each trained encoder is (chosen on the validation split, never on query/gallery)."""
    rows = [(c.dataset, m.method, m.selection) for c in collected for m in c.methods if m.selection]
    if not rows:
        return []
    lines = ["## Model selection (validation split carved from training identities)", "",
             "| dataset | method | selected on | selected epoch | last epoch | resumed after an interruption |",
             "|---|---|---|---|---|---|"]
    def cell(v: object) -> str:
        return "-" if v is None else str(v)

    lines += [f"| {ds} | {m} | {_criterion(sel.get('selected_on'))} | {cell(sel.get('selected_epoch'))} | "
              f"{cell(sel.get('last_epoch'))} | {_resumed(sel.get('resumed'))} |" for ds, m, sel in rows]
    return lines + ["", "Test numbers above are of the selected epoch, evaluated once. A resumed run continued "
                    "from its last checkpoint (its result equals an uninterrupted run on CPU; see "
                    "tests/test_reliability_kill.py).", ""]


def _pseudo_labels(collected: list[CollectedDataset]) -> list[str]:
    """Pseudo-label ARI at each run's last epoch, per seed: does the regime give clustering signal?"""
    rows = [(c.dataset, m.method, [(r.seed, r.training["last_pseudo_ari"]) for r in m.runs
                                   if "last_pseudo_ari" in r.training]) for c in collected for m in c.methods]
    rows = [row for row in rows if row[2]]
    if not rows:
        return []
    lines = ["## Pseudo-label quality (adjusted Rand index at the last epoch, per seed)", "",
             "Against the hidden training identities: a diagnostic of the regime, never used for training or "
             "model selection. For the baseline it is the warm-up's last clustering.", "",
             "| dataset | method | seeds | ARI per seed | lowest |", "|---|---|---|---|---|"]
    for ds, method, values in rows:
        per_seed = ", ".join(f"{seed}: {ari:.3f}" for seed, ari in values)
        lines.append(f"| {ds} | {method} | {len(values)} | {per_seed} | {min(a for _, a in values):.3f} |")
    return lines + [""]


MESH_ESTIMATOR_ORDER = ("oracle", "hmr", "landmarks", "standing")


def _mean_median(block: dict | None, digits: int) -> str:
    if not block:
        return "-"
    return f"{block['mean']:.{digits}f} / {block['median']:.{digits}f}"


def _mesh_accuracy(collected: list[CollectedDataset]) -> list[str]:
    """Each estimator's meshes against SynthReID's ground truth (results/<ds>/meshes/accuracy.json)."""
    blocks = [(c.dataset, c.mesh_accuracy) for c in collected if c.mesh_accuracy]
    if not blocks:
        return []
    lines = ["## Mesh estimation", "",
             "Which estimator gave the structure renders, and each measured estimator against the ground truth "
             "where the dataset has it (SynthReID): joint error after Procrustes alignment (PA-MPJPE, 24 SMPL "
             "joints), yaw error (front/back confusions count up to 180 degrees), silhouette IoU of the "
             "0-degree render with the true person mask (hair, bags and loose clothes keep the oracle under 1) "
             "and the share of images where the estimator found a person (the others get a standing body). "
             "The oracle's zero errors check the metric; `standing` estimates nothing (the floor).", "",
             "| dataset | estimator | renders | images | person found | PA-MPJPE mm (mean / median) | "
             "yaw error deg (mean / median) | yaw error > 90 deg | silhouette IoU (mean / median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for ds, acc in blocks:
        rank = {name: i for i, name in enumerate(MESH_ESTIMATOR_ORDER)}
        for name in sorted(acc["estimators"], key=lambda n: rank.get(n, len(rank))):
            a = acc["estimators"][name].get("all", {})
            found = a.get("detection_rate")
            over = a.get("yaw_error_over_90")
            lines.append(f"| {ds} | {name} | {'**used**' if name == acc.get('used') else 'measured'} | "
                         f"{a.get('images', '-')} | {'-' if found is None else f'{100 * found:.1f} %'} | "
                         f"{_mean_median(a.get('pa_mpjpe_mm'), 1)} | {_mean_median(a.get('yaw_error_deg'), 1)} | "
                         f"{'-' if over is None else f'{100 * over:.1f} %'} | "
                         f"{_mean_median(a.get('silhouette_iou'), 3)} |")
    lines.append("")
    for ds, acc in blocks:
        used = acc.get("used")
        found = acc["estimators"].get(used, {}).get("all", {}).get("detection_rate")
        if used not in (None, "oracle", "standing") and found is not None and found < 1.0:
            lines += [f"On {ds}, `{used}` found a plausible person in {100 * found:.1f} % of the images; the other "
                      f"{100 * (1 - found):.1f} % (no person found, or a fitted body under half the image height) "
                      "got the standing body facing the camera. Every training image needs a structure render, "
                      "so they are kept with that floor body rather than dropped, and the errors above include "
                      "them.", ""]
    for ds, _ in blocks:
        if any(rel == f"{ds}/meshes/worst.png" for c in collected if c.dataset == ds for rel, _ in c.pictures):
            lines += [f"Largest joint errors on {ds} (estimate in green over the photo):", "",
                      f"![worst mesh estimates, {ds}]({ds}/meshes/worst.png)", ""]
    return lines


def _resumed(value: object) -> str:
    return "**yes**" if value is True else ("no" if value is False else "-")


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

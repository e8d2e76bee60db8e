"""View fidelity in the report: how close each generator's novel views are to SynthReID's true views.

Reads the ``view_fidelity.json`` files of the view-fidelity stages (results/<ds>/<run>/) into the
collected results, renders a per-angle table and a figure (one panel per metric, a line per generator,
the input-copy floor dashed and, for the silhouette IoU, the rule's ceiling dotted). The numbers are of
the current seed (the files of other seeds are not archived).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from genreid.registry import PRETRAIN_RUN, stage3_methods  # noqa: E402
from genreid.utils.atomic import atomic_path  # noqa: E402


def generator_runs() -> tuple[str, ...]:
    """Runs whose generator is measured: stage 2 and every registered method that trains one."""
    return (PRETRAIN_RUN, *(m.name for m in stage3_methods() if m.needs_generator))
LABELS = {"input_copy": "input copy (floor)", "pretrain": "stage 2", "gcl": "GCL (stage 3)",
          "gcl_plus": "GCL+ (stage 3)"}
METRICS: tuple[tuple[str, str, str], ...] = (  # key, label, better
    ("masked_l1", "masked L1 (0-255)", "lower"), ("psnr", "PSNR (dB)", "higher"), ("ssim", "SSIM", "higher"),
    ("silhouette_iou", "silhouette IoU", "higher"), ("rank1", "identity rank-1 (%)", "higher"),
    ("mAP", "identity mAP (%)", "higher"))


def read_view_fidelity(results_dir: str | os.PathLike, dataset: str) -> dict[str, dict[str, Any]]:
    """run -> the run's view_fidelity.json (only the generator runs whose file exists)."""
    out = {}
    for run in generator_runs():
        path = Path(results_dir) / dataset / run / "view_fidelity.json"
        if path.is_file():
            out[run] = json.loads(path.read_text())
    return out


def _rows(fidelity: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """generator label -> per-angle rows, the input-copy floor first (taken from any available run)."""
    available = {run: f for run, f in fidelity.items() if f.get("available")}
    if not available:
        return {}
    rows = {"input_copy": next(iter(available.values()))["input_copy"]["per_angle"]}
    rows.update({run: available[run]["per_angle"] for run in generator_runs() if run in available})
    return rows


def _cell(value: float, key: str) -> str:
    if value != value:  # NaN
        return "-"
    if value == float("inf"):
        return "inf"
    return f"{value:.3f}" if key in ("ssim", "silhouette_iou") else f"{value:.1f}"


def render_section(dataset: str, fidelity: dict[str, dict[str, Any]], figure: str | None = None) -> list[str]:
    """Markdown: the per-angle table of every measured generator, or why there is none."""
    if not fidelity:
        return []
    lines = [f"## View fidelity: {dataset}", ""]
    rows = _rows(fidelity)
    if not rows:
        reasons = sorted({str(f.get("reason")) for f in fidelity.values()})
        return lines + [f"Not measured: {'; '.join(reasons)}.", ""]
    first = next(f for f in fidelity.values() if f.get("available"))
    ceiling = first.get("silhouette_rule_ceiling", {})
    size = "x".join(map(str, first.get("image_size", [])))
    lines += [f"Generated views G(s_angle, a(x)) of the {first['images']} validation images against the true render "
              f"of the same person turned by the angle (no occluder), at the network size {size}; current seed "
              "only. Identity: generated views as queries against the true views of the same angle, ranked by "
              f"{first['reference_encoder']}. Silhouette rule: {first['silhouette_rule']}; the rule's own IoU on "
              "the true views (what a perfect generator scores) is the ceiling column. \"input copy\" returns the "
              "input photo at every angle: a generator that learned to turn people beats it away from 0 degrees.",
              "",
              "| generator | angle | masked L1 ↓ | PSNR ↑ | SSIM ↑ | silhouette IoU ↑ | IoU ceiling | "
              "identity R1 ↑ | identity mAP ↑ |", "|---|---|---|---|---|---|---|---|---|"]
    for run, per_angle in rows.items():
        for r in per_angle:
            cells = [_cell(float(r[k]), k) for k, _, _ in METRICS]
            lines.append(f"| {LABELS.get(run, run)} | {r['angle']} | {' | '.join(cells[:4])} | "
                         f"{_cell(float(ceiling.get(str(r['angle']), 'nan')), 'ssim')} | {' | '.join(cells[4:])} |")
    lines.append("")
    if figure:
        lines += [f"![view fidelity, {dataset}]({figure})", ""]
    return lines


def plot_view_fidelity(dataset: str, fidelity: dict[str, dict[str, Any]], out_png: str | os.PathLike) -> Path:
    """One panel per metric against the angle, a line per generator; a note when nothing was measured."""
    rows = _rows(fidelity)
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), squeeze=False)
    if not rows:
        for ax in axes.flat:
            ax.axis("off")
        reasons = sorted({str(f.get("reason")) for f in fidelity.values()}) or ["no view_fidelity.json found"]
        axes[0, 0].text(0, 0.5, f"{dataset}: no view fidelity ({'; '.join(reasons)})", fontsize=9)
    else:
        first = next(f for f in fidelity.values() if f.get("available"))
        for ax, (key, label, better) in zip(axes.flat, METRICS):
            for run, per_angle in rows.items():
                angles = [r["angle"] for r in per_angle]
                values = [r[key] if r[key] != float("inf") else float("nan") for r in per_angle]
                ax.plot(angles, values, marker=".", linestyle="--" if run == "input_copy" else "-",
                        label=LABELS.get(run, run))
            if key == "silhouette_iou" and first.get("silhouette_rule_ceiling"):
                ceiling = first["silhouette_rule_ceiling"]
                ax.plot([int(a) for a in ceiling], list(ceiling.values()), linestyle=":", color="grey",
                        label="rule ceiling")
            ax.set(title=f"{label}, {better} is better", xlabel="angle (degrees)")
            ax.set_xticks(first["angles"])
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=7)
        fig.suptitle(f"View fidelity, {dataset} (validation images, current seed)")
    fig.tight_layout()
    path = Path(out_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path

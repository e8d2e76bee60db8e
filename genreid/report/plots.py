"""Report figures: CMC curves of all methods, training curves, pseudo-label quality per epoch.

Each figure is written twice: a PNG the results README links, and a long-format CSV that
``dvc plots show`` renders with the templates in ``genreid/report/templates`` (one colour per
method or run, one panel per dataset or metric), so plots compare across experiments too.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from genreid.errors import GenreidError  # noqa: E402
from genreid.utils.atomic import atomic_path, write_text  # noqa: E402

# dvclive metric names sorted into figures by keyword (case-insensitive, first match wins).
PSEUDO_LABEL_KEYS = re.compile(r"cluster|outlier|nmi|\bari\b|pseudo|^eps$", re.IGNORECASE)
LOSS_KEYS = re.compile(r"loss", re.IGNORECASE)
VALIDATION_KEYS = re.compile(r"val|map|\bR\d+\b", re.IGNORECASE)
# Pseudo-label quality drawn in the PNG (one panel each, a line per run); the CSV keeps every metric.
PSEUDO_PANELS: tuple[str, ...] = ("num_clusters", "outlier_ratio", "nmi", "ari", "eps")
_ALIASES = {"clusters": "num_clusters"}


@dataclass(frozen=True)
class Series:
    """One logged quantity of one run (e.g. synthetic / gcl / loss/total over steps)."""

    dataset: str
    run: str
    metric: str
    steps: list[float]
    values: list[float]


def read_cmc(path: str | os.PathLike) -> tuple[list[int], list[float]]:
    """Ranks and CMC values (percent) from an evaluate stage's ``cmc.csv`` (columns rank, cmc)."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        ranks = [int(float(r["rank"])) for r in rows]
        values = [float(r["cmc"]) for r in rows]
    except (OSError, KeyError, ValueError) as exc:
        raise GenreidError(f"cannot read CMC curve {path} ({exc!r})",
                           "it needs columns rank and cmc; rerun `dvc repro` for its evaluate stage") from exc
    return ranks, values


def read_dvclive(live_dir: str | os.PathLike, dataset: str, run: str) -> list[Series]:
    """Every step-indexed metric a dvclive folder logged (``plots/metrics/**/*.tsv``)."""
    root = Path(live_dir) / "plots" / "metrics"
    out: list[Series] = []
    for tsv in sorted(root.rglob("*.tsv")):
        name = tsv.relative_to(root).with_suffix("").as_posix()
        steps: list[float] = []
        values: list[float] = []
        with open(tsv, newline="") as fh:
            for rec in csv.DictReader(fh, delimiter="\t"):
                value = rec.get(tsv.stem)
                if value in (None, ""):
                    continue
                steps.append(float(rec.get("step") or len(steps)))
                values.append(float(value))
        if values:
            out.append(Series(dataset=dataset, run=run, metric=name, steps=steps, values=values))
    return out


def split_series(series: Iterable[Series]) -> tuple[list[Series], list[Series], list[Series], list[Series]]:
    """(losses, validation, pseudo-label quality, others such as learning rates)."""
    losses, validation, pseudo, other = [], [], [], []
    for s in series:
        if PSEUDO_LABEL_KEYS.search(s.metric):
            name = s.metric.rsplit("/", 1)[-1]
            pseudo.append(replace(s, metric=_ALIASES.get(name, name)))
        elif LOSS_KEYS.search(s.metric):
            losses.append(s)
        elif VALIDATION_KEYS.search(s.metric):
            validation.append(s)
        else:
            other.append(s)
    return losses, validation, pseudo, other


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def plot_cmc(curves: dict[str, dict[str, tuple[list[int], list[float]]]], out_png: str | os.PathLike,
             max_rank: int = 20) -> Path:
    """CMC of every method, one panel per dataset: ``curves[dataset][method] = (ranks, cmc)``."""
    datasets = list(curves)
    fig, axes = plt.subplots(1, max(1, len(datasets)), figsize=(5 * max(1, len(datasets)), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for method, (ranks, values) in curves[ds].items():
            keep = [i for i, r in enumerate(ranks) if r <= max_rank]
            ax.plot([ranks[i] for i in keep], [values[i] for i in keep], marker=".", label=method)
        ax.set(title=f"CMC, {ds}", xlabel="rank", ylabel="matching rate (%)", ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(out_png))


def plot_series_grid(series: list[Series], out_png: str | os.PathLike, title: str,
                     panel_by_metric: bool = False) -> Path | None:
    """One panel per (dataset, run), lines per metric; or one panel per metric, lines per run.

    Returns None (and writes nothing) when there is nothing to draw.
    """
    if not series:
        return None
    if panel_by_metric:
        keys = sorted({(s.dataset, s.metric) for s in series})
        panel = {k: [s for s in series if (s.dataset, s.metric) == k] for k in keys}
        label = lambda s: s.run
    else:
        keys = list(dict.fromkeys((s.dataset, s.run) for s in series))
        panel = {k: [s for s in series if (s.dataset, s.run) == k] for k in keys}
        label = lambda s: s.metric
    crowded = max(len(v) for v in panel.values()) > 5  # many losses: legends go beside their panel
    cols = min(3 if crowded else 4, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=((6.0 if crowded else 4.2) * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for s in panel[key]:
            ax.plot(s.steps, s.values, marker="." if len(s.values) < 40 else None, label=label(s))
        ax.set(title=" / ".join(key), xlabel="epoch (dvclive step)")
        ax.grid(alpha=0.3)
        if crowded:
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        else:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, Path(out_png))


def _csv(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_cmc_csv(curves: dict[str, dict[str, tuple[list[int], list[float]]]], path: str | os.PathLike) -> Path:
    """Long format (dataset, method, rank, cmc) for the ``cmc`` DVC plot."""
    rows = [(ds, m, r, f"{v:.4f}") for ds, per in curves.items() for m, (rs, vs) in per.items()
            for r, v in zip(rs, vs)]
    return write_text(path, _csv(["dataset", "method", "rank", "cmc"], rows))


def write_series_csv(series: list[Series], path: str | os.PathLike) -> Path:
    """Long format (dataset, run, metric, step, value) for the training / pseudo-label DVC plots."""
    rows = [(s.dataset, s.run, s.metric, f"{st:g}", f"{v:.6g}") for s in series
            for st, v in zip(s.steps, s.values)]
    return write_text(path, _csv(["dataset", "run", "metric", "step", "value"], rows))

"""Report figures: CMC curves of all methods, and per training stage its losses, validation and
pseudo-label quality per epoch (stage 1, stage 2 and stage 3 apart: their epochs are different
things), validation and outliers in percent.

Each figure is written twice: a PNG the results README links, and a long-format CSV that
``dvc plots show`` renders with the templates in ``genreid/report/templates`` (one colour per
method or run, one panel per dataset or metric, the unit in each panel's title), so plots compare
across experiments too.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from genreid.errors import GenreidError  # noqa: E402
from genreid.utils.atomic import atomic_path, write_text  # noqa: E402


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


# The training figures, one per stage so that stage-2 and stage-3 epochs never share an x axis.
STAGE_OF_RUN = {"baseline": 1, "source": 1, "pretrain": 2}  # every other run is a stage-3 method
# (file stem, stages, what goes in, title): each is a CSV for `dvc plots show` and a PNG for the README.
STAGE_FIGURES: tuple[tuple[str, int, str, str], ...] = (
    ("stage1", 1, "all", "Stage 1 (warm-up): loss, validation and pseudo-labels per epoch"),
    ("stage2", 2, "losses", "Stage 2 (generator pre-training): losses per epoch"),
    ("stage3_losses", 3, "losses", "Stage 3 (joint training): losses per epoch, one line per method"),
    ("stage3_quality", 3, "quality", "Stage 3 (joint training): validation and pseudo-labels per epoch"),
)
# Quality panels in display order: (leaf names in the dvclive log, panel title with unit, scale).
QUALITY_PANELS: tuple[tuple[tuple[str, ...], str, float], ...] = (
    (("val/mAP", "val_mAP"), "validation mAP (%)", 100.0),
    (("val/R1", "val_R1"), "validation R1 (%)", 100.0),
    (("num_clusters", "clusters"), "clusters (count)", 1.0),
    (("outlier_ratio",), "outliers (% of training images)", 100.0),
    (("nmi",), "NMI with the true identities (0-1)", 1.0),
    (("ari",), "ARI with the true identities (0-1)", 1.0),
)
EPOCH_LABEL = "epoch (dvclive step)"
VALUE_LABEL = "value (unit in the panel title)"


def stage_of(run: str) -> int:
    return STAGE_OF_RUN.get(run, 3)


def panel_of(metric: str) -> tuple[int, str, float] | None:
    """(order, title with unit, scale) of a logged metric's panel; None for what no figure shows
    (learning rates, cluster sizes, DBSCAN settings)."""
    leaf = metric.rsplit("/", 1)[-1]
    if metric.startswith("loss/") or metric == "loss":
        return (0 if leaf in ("total", "loss", "g_total") else 1, f"loss: {'total' if leaf == 'loss' else leaf}", 1.0)
    for order, (names, title, scale) in enumerate(QUALITY_PANELS, start=2):
        if metric in names or (leaf in names and not metric.startswith("loss")):
            return order, title, scale
    return None


@dataclass(frozen=True)
class PanelRow:
    """One point of a stage figure: panel (metric with unit), line (method), epoch, value in that unit."""

    dataset: str
    run: str
    line: str
    order: int
    panel: str
    epoch: float
    value: float


def stage_rows(series: Iterable[Series], stage: int, content: str) -> list[PanelRow]:
    """The points of one stage figure; lines are runs (``dataset/run`` when several datasets)."""
    series = list(series)
    several = len({s.dataset for s in series}) > 1
    rows: list[PanelRow] = []
    for s in series:
        panel = panel_of(s.metric)
        if stage_of(s.run) != stage or panel is None:
            continue
        order, title, scale = panel
        is_loss = title.startswith("loss")
        if (content == "losses" and not is_loss) or (content == "quality" and is_loss):
            continue
        line = f"{s.dataset}/{s.run}" if several else s.run
        rows += [PanelRow(s.dataset, s.run, line, order, title, st, scale * v) for st, v in zip(s.steps, s.values)]
    return sorted(rows, key=lambda r: (r.order, r.panel, r.line, r.epoch))


def write_stage_csv(rows: list[PanelRow], path: str | os.PathLike) -> Path:
    """Long format (dataset, run, line, order, panel, epoch, value) for a stage's DVC plot."""
    return write_text(path, _csv(["dataset", "run", "line", "order", "panel", "epoch", "value"],
                                 [(r.dataset, r.run, r.line, r.order, r.panel, f"{r.epoch:g}", f"{r.value:.6g}")
                                  for r in rows]))


def plot_stage(rows: list[PanelRow], out_png: str | os.PathLike, title: str) -> Path | None:
    """One panel per metric (its unit on the y axis), one line per run, one legend for the figure."""
    if not rows:
        return None
    panels = list(dict.fromkeys(r.panel for r in rows))
    lines = list(dict.fromkeys(r.line for r in sorted(rows, key=lambda r: r.line)))
    colours = {line: plt.get_cmap("tab10")(i % 10) for i, line in enumerate(lines)}
    cols = min(4, len(panels))
    n_rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.8 * cols, 2.9 * n_rows + 0.9), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for line in lines:
            pts = [(r.epoch, r.value) for r in rows if r.panel == panel and r.line == line]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="." if len(pts) < 40 else None, color=colours[line], label=line)
        ax.set_title(panel, fontsize=10)
        ax.set_ylabel(panel, fontsize=8)
        ax.set_xlabel(EPOCH_LABEL, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colours[line], marker=".", label=line) for line in lines]
    height = 2.9 * n_rows + 0.9  # inches: the panels and a 0.9-inch band for the title and the legend
    fig.suptitle(title, y=1.0 - 0.08 / height, va="top", fontsize=12)
    fig.legend(handles=handles, loc="upper center", ncol=min(6, len(lines)), fontsize=10, frameon=False,
               bbox_to_anchor=(0.5, 1.0 - 0.35 / height))
    fig.tight_layout(rect=(0, 0, 1, 1.0 - 0.8 / height))
    return _save(fig, Path(out_png))


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
            ax.step([ranks[i] for i in keep], [values[i] for i in keep], where="post", marker=".", label=method)
        ax.set(title=f"CMC on the test split, {ds}", xlabel="rank k",
               ylabel="queries matched in the top k (%)", ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
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

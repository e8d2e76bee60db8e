"""Stage ``collect@<ds>``: one dataset's evaluations, seeds, curves and pictures -> results/collected/<ds>.json.

Why a stage per dataset: DVC can depend on a folder holding other stages' outputs, so
``collect@<ds>`` depends on ``results/<ds>/`` (whatever its evaluate and training stages wrote)
and the single ``report`` stage depends on ``results/collected/``; the number of datasets stays a
param. This is also where the current seed is filed into the seed archive (see ``seeds.py``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genreid.errors import GenreidError
from genreid.registry import PRETRAIN_RUN, method_names
from genreid.report import plots
from genreid.report.fidelity import read_view_fidelity
from genreid.report.seeds import RunFacts, SeedRun, archive_run, collect_runs, settings_groups
from genreid.utils.atomic import write_json

# Accepted spellings of each metric in a metrics.json (first found wins); values are percent.
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "mAP": ("mAP", "map"),
    "R1": ("R1", "rank1", "rank-1", "top1"),
    "R5": ("R5", "rank5", "rank-5", "top5"),
    "R10": ("R10", "rank10", "rank-10", "top10"),
    "mINP": ("mINP", "minp"),
}
PICTURES: tuple[tuple[str, str], ...] = (
    ("dataset/difficulty.md", "SynthReID difficulty (colour histogram and untrained network references)"),
    ("dataset/contact_sheet.png", "SynthReID contact sheet"),
    ("meshes/overlay.png", "mesh renders over their images"),
    ("meshes/worst.png", "mesh estimates with the largest joint errors against the ground truth"),
    ("pretrain/views.png", "generator sheet after pre-training (novel views)"),
)


def training_runs() -> tuple[str, ...]:
    """The runs whose training curves the report draws: the warm-up, the generator pre-training and every
    stage-3 method."""
    return ("baseline", PRETRAIN_RUN) + method_names()


SELECTION_KEYS: tuple[str, ...] = ("selected_on", "selected_epoch", "last_epoch")


@dataclass
class MethodRuns:
    method: str
    runs: list[SeedRun]
    other_settings: list[str]
    selection: dict[str, Any] = field(default_factory=dict)  # how this run's encoder was chosen


@dataclass
class CollectedDataset:
    dataset: str
    setting: str
    fingerprint: str
    methods: list[MethodRuns]
    cmc: dict[str, tuple[list[int], list[float]]]
    series: list[plots.Series]
    pictures: list[tuple[str, str]]  # (path relative to results/, caption)
    procedural_body: bool = False  # meshes from the procedural stand-in body, not SMPL (a deviation on real data)
    view_fidelity: dict[str, Any] = field(default_factory=dict)  # run -> view_fidelity.json (current seed)
    mesh_accuracy: dict[str, Any] = field(default_factory=dict)  # results/<ds>/meshes/accuracy.json ({}: none)


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
    block = raw["test"] if isinstance(raw.get("test"), dict) else raw
    metrics: dict[str, float] = {}
    for name, keys in METRIC_KEYS.items():
        for key in keys:
            if isinstance(block.get(key), (int, float)):
                metrics[name] = float(block[key])
                break
    if "mAP" not in metrics or "R1" not in metrics:
        raise GenreidError(f"metrics file {path} has no mAP / R1 (keys: {sorted(block)})",
                           "rerun its evaluate stage with the current code")
    origin = {**raw, **read_provenance(path)}
    seed = origin.get("seed", (origin.get("provenance") or {}).get("seed"))
    return metrics, (int(seed) if seed is not None else None)


def read_provenance(metrics_path: str | os.PathLike) -> dict[str, Any]:
    """The evaluation's ``provenance.json`` next to its metrics file (seed, training record, run record);
    empty when there is none (metrics written before the two were split, or by another tool)."""
    path = Path(metrics_path).with_name("provenance.json")
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GenreidError(f"provenance file {path} is not valid JSON ({exc})", "rerun its evaluate stage") from exc
    return data if isinstance(data, dict) else {}


def training_facts(summary: dict[str, Any] | None) -> dict[str, float]:
    """Pseudo-label ARI of the last trained epoch (against the hidden identities: a diagnostic of the
    regime, never used for training or selection) from a train/summary.json; empty when none was logged."""
    history = (summary or {}).get("history") or []
    aris = [h["pseudo_ari"] for h in history if isinstance(h.get("pseudo_ari"), (int, float))]
    return {"last_pseudo_ari": float(aris[-1])} if aris else {}


def collected_path(results_dir: str | os.PathLike, dataset: str) -> Path:
    return Path(results_dir) / "collected" / f"{dataset}.json"


def other_groups(archive: Path, dataset: str, method: str, fingerprint: str) -> list[str]:
    """One line per archived settings group other than ``fingerprint``: its folder, recipe, machines and seeds."""
    return [f"seeds/{dataset}/{method}/{fp}/ (recipe {g['recipe']}, {machines_text(g['machines'])}, "
            f"seeds {', '.join(map(str, g['seeds']))})"
            for fp, g in settings_groups(archive, dataset, method).items() if fp != fingerprint]


def machines_text(machines: dict[str, list[int]]) -> str:
    """``on <CPU> (seeds ...)`` for each machine a group's seeds ran on."""
    return "; ".join(f"{label} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
                     for label, seeds in machines.items())


def collect_dataset(results_dir: str | os.PathLike, dataset: str, methods: list[str], setting: str, seed: int,
                    fingerprint: str, procedural_body: bool = False, recipe: str | None = None) -> CollectedDataset:
    """File this run's seed for every method (under its settings fingerprint), gather all seeds of the same
    settings, curves and pictures."""
    results = Path(results_dir)
    archive = results / "seeds"
    per_method: list[MethodRuns] = []
    cmc: dict[str, tuple[list[int], list[float]]] = {}
    for method in methods:
        folder = results / dataset / method
        metrics, recorded_seed = read_metrics(folder / "metrics.json")
        summary_path = folder / "train" / "summary.json"  # "resumed" lives only there: encoder.pt stays byte-stable
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
        machine = (read_provenance(folder / "metrics.json").get("provenance") or {}).get("cpu")
        archive_run(archive, dataset, method, seed if recorded_seed is None else recorded_seed, metrics, fingerprint,
                    RunFacts(recipe, training_facts(summary), machine))
        runs, _ = collect_runs(archive, dataset, method, fingerprint)
        origin = {**json.loads((folder / "metrics.json").read_text()), **read_provenance(folder / "metrics.json")}
        training = origin.get("training") or {}
        selection = {k: training[k] for k in SELECTION_KEYS if k in training}
        if summary is not None:
            selection["resumed"] = summary.get("resumed")
        per_method.append(MethodRuns(method, runs, other_groups(archive, dataset, method, fingerprint), selection))
        if (folder / "cmc.csv").is_file():
            cmc[method] = plots.read_cmc(folder / "cmc.csv")
    series: list[plots.Series] = []
    for run in training_runs():
        series += plots.read_dvclive(results / dataset / run / "train", dataset, run)
    pictures = [(f"{dataset}/{rel}", what) for rel, what in PICTURES if (results / dataset / rel).is_file()]
    pictures += [(f"{dataset}/{m}/ranked_lists.png", f"ranked lists, {m} (best and worst queries)")
                 for m in methods if (results / dataset / m / "ranked_lists.png").is_file()]
    fidelity = {run: {k: v for k, v in f.items() if k != "provenance"}
                for run, f in read_view_fidelity(results, dataset).items()}
    collected = CollectedDataset(dataset, setting, fingerprint, per_method, cmc, series, pictures, procedural_body,
                                 fidelity, read_mesh_accuracy(results / dataset / "meshes" / "accuracy.json"))
    write_json(collected_path(results, dataset), _to_json(collected))
    return collected


def read_mesh_accuracy(path: Path) -> dict[str, Any]:
    """The meshes stage's accuracy report ({} when the stage wrote none or it is unreadable: the
    report then has no mesh table rather than failing on a diagnostic)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) and isinstance(raw.get("estimators"), dict) else {}


def _to_json(c: CollectedDataset) -> dict[str, Any]:
    return {
        "dataset": c.dataset, "setting": c.setting, "fingerprint": c.fingerprint,
        "methods": [{"method": m.method, "other_settings": m.other_settings, "selection": m.selection,
                     "runs": [{"seed": r.seed, "metrics": r.metrics, "path": r.path.as_posix(),
                               **({"training": r.training} if r.training else {})} for r in m.runs]}
                    for m in c.methods],
        "cmc": [{"method": m, "rank": r, "cmc": v} for m, (r, v) in c.cmc.items()],  # a list keeps the order
        "series": [asdict(s) for s in c.series],
        "pictures": [list(p) for p in c.pictures],
        "procedural_body": c.procedural_body,
        "view_fidelity": c.view_fidelity,
        "mesh_accuracy": c.mesh_accuracy,
    }


def load_collected(results_dir: str | os.PathLike, dataset: str) -> CollectedDataset:
    path = collected_path(results_dir, dataset)
    try:
        raw = json.loads(path.read_text())
        return CollectedDataset(
            dataset=raw["dataset"], setting=raw["setting"], fingerprint=raw["fingerprint"],
            methods=[MethodRuns(m["method"], [SeedRun(r["seed"], r["metrics"], Path(r["path"]), r.get("training", {}))
                                              for r in m["runs"]],
                                m["other_settings"], m.get("selection", {})) for m in raw["methods"]],
            cmc={v["method"]: (v["rank"], v["cmc"]) for v in raw["cmc"]},
            series=[plots.Series(**s) for s in raw["series"]],
            pictures=[(p[0], p[1]) for p in raw["pictures"]],
            procedural_body=bool(raw.get("procedural_body", False)),
            view_fidelity=dict(raw.get("view_fidelity", {})),
            mesh_accuracy=raw.get("mesh_accuracy") or {},
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GenreidError(f"collected results {path} are missing or unreadable ({exc!r})",
                           f"run `dvc repro collect@{dataset}` before the report") from exc

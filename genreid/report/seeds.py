"""Several seeds of one setting, gathered with plain ``dvc repro`` / ``dvc exp run``.

Each report run files the current metrics of every (dataset, method) under
``results/seeds/<dataset>/<method>/<fingerprint>/seed_<seed>.json`` (a DVC ``persist`` output,
committed to git), where the fingerprint hashes every param except the seed. The path carries the
settings, so a run with other settings (the tiny recipe, an ``-S`` override) files its seeds in a
folder of its own and can never overwrite another setting's committed record. The table then
averages the archived runs of the current fingerprint, so running seeds 1, 2, 3 one after another
gives mean and std, and a run with other settings is never mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genreid.errors import GenreidError
from genreid.utils.atomic import write_json
from genreid.utils.isa import cap_name, computing_runtime

# Params that do not change what a run measures: the seed itself, which datasets/methods are
# listed, where the report goes, and runtime knobs (device, threads, workers); ``uda`` is derived from
# ``datasets`` and ``warmup.source_dataset`` (the latter is fingerprinted).
FINGERPRINT_EXCLUDED: tuple[str, ...] = ("seed", "datasets", "runtime", "report", "eval.methods",
                                         "train.methods", "uda")


def added_key_defaults() -> dict[str, Any]:
    """Keys added after seeds were archived, with their defaults: left out of the fingerprint while at
    the default, so archived runs of unchanged settings keep averaging with new ones (a changed value
    still separates the runs)."""
    from genreid.config.sections.data import SynthDomainBConfig
    from genreid.config.sections.gan import ControlAugConfig
    from genreid.config.sections.source import SourceConfig

    return {"train.control_aug": ControlAugConfig().model_dump(mode="json"),
            "source": SourceConfig().model_dump(mode="json"),  # UDA
            "data.synthetic_b": SynthDomainBConfig().model_dump(mode="json"),
            "train.detach_appearance_for_generator": False}


def code_versions() -> dict[str, int]:
    """Versions of the code that decides what a run measures without any param saying so: the
    SynthReID generator (its bytes) and the seed scheme (every random stream). A new version starts
    a new settings group, so runs on other data or streams never average together."""
    from genreid.utils import versions

    return {"synthreid_generator": versions.SYNTHREID_GENERATOR_VERSION, "seed_scheme": versions.STREAM_SCHEME_VERSION}


@dataclass(frozen=True)
class SeedRun:
    seed: int
    metrics: dict[str, float]
    path: Path
    training: dict[str, float] = field(default_factory=dict)  # e.g. last_pseudo_ari (never used for selection)


def _parent(tree: dict[str, Any], dotted: str) -> tuple[Any, str]:
    node: Any = tree
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node, leaf


def config_fingerprint(params: dict[str, Any], excluded: tuple[str, ...] = FINGERPRINT_EXCLUDED) -> str:
    """Short hash of the params tree without ``excluded`` dotted keys (nor added keys at their default),
    together with :func:`code_versions` and the runtime keys that change results
    (:func:`genreid.utils.isa.computing_runtime`); equal settings on equal code
    versions give equal hashes."""
    tree = json.loads(json.dumps(params))
    kept_runtime = computing_runtime(tree.get("runtime"))
    for dotted in excluded:
        node, leaf = _parent(tree, dotted)
        if isinstance(node, dict):
            node.pop(leaf, None)
    for dotted, default in added_key_defaults().items():
        node, leaf = _parent(tree, dotted)
        if isinstance(node, dict) and node.get(leaf) == default:
            node.pop(leaf)
    tree["_code_versions"] = code_versions()
    if kept_runtime:
        tree["_runtime"] = kept_runtime
    blob = json.dumps(tree, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


RECIPE_HEADER = re.compile(r"^# Resolved from (?P<recipe>\S+) by `genreid recipe apply`")


def recipe_name(params_path: str | os.PathLike) -> str:
    """The recipe ``genreid recipe apply`` resolved into ``params_path`` (its header line), for people
    reading the archive; ``unknown`` for a hand-written params file. Never part of the key: ``-S``
    overrides change the settings but not the header, and the fingerprint is what tells settings apart."""
    try:
        with open(params_path, encoding="utf-8") as f:
            match = RECIPE_HEADER.match(f.readline())
    except OSError:
        return "unknown"
    return Path(match["recipe"]).stem if match else "unknown"


def seed_file(archive_root: str | os.PathLike, dataset: str, method: str, seed: int, fingerprint: str) -> Path:
    return Path(archive_root) / dataset / method / fingerprint / f"seed_{seed}.json"


@dataclass(frozen=True)
class RunFacts:
    """What a seed's record carries beside its metrics. ``recipe``: the recipe name, for readers only;
    ``training``: facts of the training run worth comparing across seeds (pseudo-label quality), kept
    apart from test metrics; ``machine``: the CPU the run computed on (its provenance's ``cpu`` block:
    model, vector units, instruction-set cap), since results differ across CPU types."""

    recipe: str | None = None
    training: dict[str, float] | None = None
    machine: dict[str, Any] | None = None


def archive_run(archive_root: str | os.PathLike, dataset: str, method: str, seed: int,
                metrics: dict[str, float], fingerprint: str, facts: RunFacts = RunFacts()) -> Path:
    """File one run; only the same seed of the same settings (fingerprint) overwrites its earlier entry."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", fingerprint):
        raise GenreidError(f"settings fingerprint {fingerprint!r} is not a plain folder name",
                           "file seeds through `dvc repro collect@<dataset>`")
    path = seed_file(archive_root, dataset, method, seed, fingerprint)
    entry: dict[str, Any] = {"dataset": dataset, "method": method, "seed": seed, "fingerprint": fingerprint,
                             "metrics": metrics}
    if facts.recipe:
        entry["recipe"] = facts.recipe
    if facts.training:
        entry["training"] = facts.training
    if facts.machine:
        entry["machine"] = facts.machine
    write_json(path, entry)
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GenreidError(f"seed archive file {path} is unreadable ({exc})",
                           "restore it with `git checkout -- <file>` or delete it; the next `dvc repro` "
                           "files the current seed again") from exc


def collect_runs(archive_root: str | os.PathLike, dataset: str, method: str,
                 fingerprint: str) -> tuple[list[SeedRun], list[Path]]:
    """Archived runs with this fingerprint (sorted by seed), and the files left out as other settings.
    A record filed under another fingerprint's folder than the one it states is refused (it was moved by hand)."""
    folder = Path(archive_root) / dataset / method
    runs: list[SeedRun] = []
    other: list[Path] = []
    for path in sorted(folder.glob("*/seed_*.json")) + sorted(folder.glob("seed_*.json")):
        entry = _read(path)
        try:
            seed, fp, metrics = int(entry["seed"]), str(entry["fingerprint"]), entry["metrics"]
            training = {k: float(v) for k, v in (entry.get("training") or {}).items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GenreidError(f"seed archive file {path} is unreadable ({exc})",
                               "delete it; the next `dvc repro` files the current seed again") from exc
        if path.parent != folder and path.parent.name != fp:
            raise GenreidError(f"seed archive file {path} records settings {fp} but lies in the folder of "
                               f"{path.parent.name}", f"move it to {folder / fp / path.name}")
        if fp == fingerprint and any(r.seed == seed for r in runs):
            continue  # a record left at the flat pre-fingerprint path next to its filed copy
        if fp == fingerprint:
            runs.append(SeedRun(seed=seed, metrics={k: float(v) for k, v in metrics.items()}, path=path,
                                training=training))
        else:
            other.append(path)
    runs.sort(key=lambda r: r.seed)
    return runs, other


def settings_groups(archive_root: str | os.PathLike, dataset: str, method: str) -> dict[str, dict[str, Any]]:
    """``{fingerprint: {"recipe": name, "seeds": [...], "machines": {description: [seeds]}}}`` of every
    settings group archived for one (dataset, method): what the report lists so a reader sees which runs
    were not averaged, and why, and on which CPUs they ran (:func:`machine_label`)."""
    groups: dict[str, dict[str, Any]] = {}
    folder = Path(archive_root) / dataset / method
    for path in sorted(folder.glob("*/seed_*.json")) + sorted(folder.glob("seed_*.json")):
        entry = _read(path)
        recipe = entry.get("recipe", "unknown")
        group = groups.setdefault(str(entry.get("fingerprint")), {"recipe": recipe, "seeds": [], "machines": {}})
        seed = int(entry.get("seed", -1))
        group["seeds"] = sorted({*group["seeds"], seed})
        on = machine_label(entry.get("machine"))
        group["machines"][on] = sorted({*group["machines"].get(on, []), seed})
    return groups


def machine_label(machine: dict[str, Any] | None) -> str:
    """A seed record's CPU in a few words: model, widest vector unit, instruction-set cap."""
    if not machine:
        return "machine not recorded"
    isa = machine.get("isa") or []
    widest = "AVX-512" if "avx512f" in isa else "AVX2" if "avx2" in isa else "no AVX2"
    extra = ", AMX" if "amx_tile" in isa else ""
    return f"{machine.get('model', 'unknown CPU')} ({widest}{extra}, cap {cap_name(machine.get('cap'))})"

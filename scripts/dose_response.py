"""The dose-response experiment: does GCL's gain over plain augmentation grow with its generator's quality?

    python scripts/dose_response.py --dry-run      # the plan, what is done already, the time estimate
    python scripts/dose_response.py                # every point x seeds 1 2 3 (about 13 h on 2 quiet cores)
    python scripts/dose_response.py --table-only   # rebuild the table and figure from the copies
    python scripts/dose_response.py --tiny --points default_e4 detach_e4 --seeds 1   # the loop on tiny.yaml

Points: every recipe under params/experiments/dose_response/, ``<budget>_e<stage-3 epochs>`` (generator
budgets recon_only, default, authors, long, and detach: the default budget with E_id detached from the
generator's losses, each with 4 and 12 stage-3 epochs). The control arms and oracle_views load no
generator, so only the ``default`` point of each stage-3 length runs them; the other points run GCL and
GCL+ and are paired with those controls by seed.

How it runs: one scratch clone of the repository at HEAD per seed (``--scratch``, default
.dvc/tmp/dose_response/; the committed dvc.lock and results/ are removed there), in which each point
is ``genreid recipe apply`` + the seed + ``dvc repro``. The points of a seed run in an order that keeps
stage 1 and, between points of one budget, stage 2: DVC reruns only what a point changes. After each
run its per-run files (every evaluated method's metrics.json and provenance.json, the view_fidelity.json
files, the seed-archive entries, summary.csv) are copied to ``<out>/<point>/seed_<n>/`` with a run.json
written last: a point with run.json is done. Killed, the same command resumes with the points not done
(the interrupted stage continues from its checkpoint). A clone made at another commit is refused, so
runs of two code versions never meet in one table.

Then ``<out>/table.md``, ``table.csv`` and ``figure.png`` are built from the copies
(:mod:`genreid.report.dose_response`): per point the stage-2 generator's view fidelity (silhouette IoU,
identity R1, novel angles) and the paired gains of GCL and GCL+ over control_aug and control_none with
95 % t-intervals over seeds.

``--tiny`` runs the same loop with params/tiny.yaml as the base (each point's differences from
synthetic_cpu.yaml applied over tiny.yaml, written into the clone), its scratch and output under
.dvc/tmp/dose_response/tiny/: for testing the loop; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's genreid, whatever the environment has installed

from genreid.config.docs import recipe_summary  # noqa: E402
from genreid.config.loader import deep_merge, dump_yaml, read_yaml, resolve_recipe  # noqa: E402
from genreid.errors import GenreidError  # noqa: E402
from genreid.report.dose_response import (  # noqa: E402
    RUN_FILE,
    conclusions,
    csv_table,
    dose_response_rows,
    findings,
    markdown_table,
    plot_dose_response,
    read_point_runs,
)
from genreid.utils.atomic import write_json, write_text  # noqa: E402

RECIPES = REPO / "params" / "experiments" / "dose_response"
DEFAULT_BASE = REPO / "params" / "synthetic_cpu.yaml"
TINY_BASE = REPO / "params" / "tiny.yaml"
DEFAULT_OUT = REPO / "results" / "experiments" / "dose_response"
DEFAULT_SCRATCH = REPO / ".dvc" / "tmp" / "dose_response"
# Budgets in run order: default and detach share stage 2, so they run back to back.
BUDGET_ORDER = ("default", "detach", "recon_only", "authors", "long")
GENERATIVE = ("gcl", "gcl_plus")


@dataclass(frozen=True)
class TimeModel:
    """Seconds of wall time on 2 quiet CPU cores, from the default run's stage times (stage 2 of 988
    reconstruction-only and 38 full iterations about 2.5 minutes, GCL and GCL+ about 3.5-4 minutes at
    4 epochs, the control arms under one). Loaded cores take 2-3x longer."""

    shared: float  # prepare, dataset report, meshes, true views, stage 1, untrained and baseline evaluation
    recon_iteration: float  # one reconstruction-only stage-2 iteration
    full_iteration: float  # one full-objective stage-2 iteration (D step, G step; ~7x a reconstruction one)
    stage2_pass: int  # stage-2 iterations in one pass over the training images
    view_fidelity: float  # one view_fidelity stage (stage 2's generator or a stage-3 method's)
    per_epoch: dict[str, float]  # one stage-3 epoch of each method, clustering and validation included
    detach_factor: float  # the detach ablation's extra E_id pass over x_nv
    evaluation: float  # one evaluate stage
    report: float  # collect + report


DEFAULT_TIMES = TimeModel(shared=420, recon_iteration=0.12, full_iteration=0.84, stage2_pass=38, view_fidelity=90,
                          per_epoch={"control_none": 9, "control_aug": 12, "oracle_views": 13, "gcl": 55,
                                     "gcl_plus": 62}, detach_factor=1.1, evaluation=10, report=20)
TINY_TIMES = TimeModel(shared=150, recon_iteration=0.3, full_iteration=1.0, stage2_pass=2, view_fidelity=15,
                       per_epoch={"control_none": 8, "control_aug": 8, "oracle_views": 8, "gcl": 10, "gcl_plus": 12},
                       detach_factor=1.1, evaluation=8, report=15)


@dataclass(frozen=True)
class Point:
    name: str
    budget: str
    stage3_epochs: int
    recipe: Path  # the committed recipe
    params: dict[str, Any]  # resolved, on the chosen base (tiny.yaml with --tiny)
    order: int

    @property
    def methods(self) -> list[str]:
        return list(self.params["train"]["methods"])


class DoseError(GenreidError):
    """A problem the user can fix (a clone at another commit, a failed run): message and fix."""


def tree_diff(tree: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``tree`` whose values differ from ``base`` (nested), so that ``deep_merge(base, diff)``
    gives ``tree`` back wherever ``tree`` differs."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            sub = tree_diff(value, base[key])
            if sub:
                out[key] = sub
        elif key not in base or base[key] != value:
            out[key] = value
    return out


def point_overrides(recipe: Path) -> dict[str, Any]:
    """What a point recipe changes against the default recipe (its whole _base_ chain resolved)."""
    return tree_diff(resolve_recipe(recipe), resolve_recipe(DEFAULT_BASE))


def discover_points(tiny: bool, names: list[str] | None = None) -> list[Point]:
    """The point recipes in run order (budget order, then stage-3 length); ``names`` picks some."""
    found = []
    for recipe in sorted(RECIPES.glob("*.yaml")):
        budget, sep, epochs = recipe.stem.rpartition("_e")
        if not sep or not epochs.isdigit():
            raise DoseError(f"{recipe.relative_to(REPO)}: a point recipe is named <budget>_e<stage-3 epochs>",
                            "rename it, e.g. default_e4.yaml")
        params = (deep_merge(resolve_recipe(TINY_BASE), point_overrides(recipe)) if tiny
                  else resolve_recipe(recipe))
        if not tiny and int(params["train"]["epochs"]) != int(epochs):  # tiny keeps tiny.yaml's 1 for e4
            raise DoseError(f"{recipe.relative_to(REPO)} sets train.epochs {params['train']['epochs']} but is "
                            f"named for {epochs}", "rename the recipe or fix its train.epochs")
        found.append((budget, int(epochs), recipe, params))
    rank = {b: i for i, b in enumerate(BUDGET_ORDER)}
    found.sort(key=lambda f: (rank.get(f[0], len(rank)), f[0], f[1]))
    points = [Point(r.stem, b, e, r, p, i) for i, (b, e, r, p) in enumerate(found)]
    if names:
        unknown = sorted(set(names) - {p.name for p in points})
        if unknown:
            raise DoseError(f"unknown point(s) {unknown}", f"choose from {[p.name for p in points]}")
        points = [p for p in points if p.name in names]
    return points


# -- time estimate ---------------------------------------------------------------------------------------

def stage2_seconds(params: dict[str, Any], times: TimeModel) -> float:
    pre = params["pretrain"]
    per_epoch = min(pre.get("iters_per_epoch") or times.stage2_pass, times.stage2_pass)
    total = int(pre["epochs"]) * per_epoch
    recon = min(int(pre.get("recon_warmup_iters") or 0), total)
    return recon * times.recon_iteration + (total - recon) * times.full_iteration


def point_seconds(point: Point, previous: Point | None, times: TimeModel) -> tuple[float, str]:
    """Estimated wall time of a point run after ``previous`` in the same clone (None: a fresh clone)."""
    seconds, parts = 0.0, []
    if previous is None:
        seconds += times.shared
        parts.append("stage 1 and data")
    if previous is None or (previous.params["pretrain"], previous.params["model"]) != (point.params["pretrain"],
                                                                                      point.params["model"]):
        seconds += stage2_seconds(point.params, times) + times.view_fidelity
        parts.append("stage 2")
    if previous is not None and previous.params["eval"] != point.params["eval"]:
        seconds += 2 * times.evaluation  # the untrained and baseline evaluations read the whole eval section
    detach = bool(point.params["train"].get("detach_appearance_for_generator"))
    for method in point.methods:
        factor = times.detach_factor if detach and method in GENERATIVE else 1.0
        epochs = int(point.params["train"]["epochs"])
        seconds += epochs * times.per_epoch.get(method, times.per_epoch["gcl"]) * factor
        seconds += times.evaluation + (times.view_fidelity if method in GENERATIVE else 0.0)
    seconds += times.report
    parts.append(f"stage 3 x {len(point.methods)} ({', '.join(point.methods)})")
    return seconds, " + ".join(parts)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


# -- running ---------------------------------------------------------------------------------------------

def _env(clone: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(clone),
               DVC_NO_ANALYTICS="1")
    return env


def _run(args: list[str], cwd: Path, log: Path | None = None) -> str:
    """Run a command in the clone; its output goes to ``log`` (appended) or is returned. A failure names
    the command, the exit code and the log."""
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(f"\n$ {' '.join(args)}  # {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
            f.flush()
            proc = subprocess.run(args, cwd=cwd, env=_env(cwd), stdout=f, stderr=subprocess.STDOUT, text=True)
        if proc.returncode == 130:
            raise KeyboardInterrupt
        if proc.returncode != 0:
            tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
            raise DoseError(f"`{' '.join(args)}` failed in {cwd} (exit {proc.returncode}); last lines of {log}:\n"
                            f"{tail}", "fix the cause, then rerun the same command: it resumes at this point")
        return ""
    proc = subprocess.run(args, cwd=cwd, env=_env(cwd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise DoseError(f"`{' '.join(args)}` failed in {cwd} (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


def head_commit() -> str:
    return _run(["git", "rev-parse", "HEAD"], REPO)


def uncommitted_changes() -> list[str]:
    """Tracked files that differ from HEAD (pipeline outputs aside): they are not in the clones."""
    out = _run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results",
                ":(exclude)dvc.lock", ":(exclude)params.yaml"], REPO)
    return [line[3:] for line in out.splitlines() if line.strip()]


def ensure_clone(scratch: Path, seed: int, commit: str) -> Path:
    """The seed's scratch clone at ``commit`` (made once, reused on resume); refused at another commit."""
    clone = scratch / f"seed_{seed}"
    if (clone / ".git").exists():
        at = _run(["git", "rev-parse", "HEAD"], clone)
        if at != commit:
            raise DoseError(f"{clone} is a clone at {at[:12]} but the repository is at {commit[:12]}; the points "
                            "done there ran on that code",
                            f"finish the experiment at that commit (`git checkout {at[:12]}`), or delete {clone} "
                            "and the copies of its runs to start again at HEAD")
        return clone
    partial = clone.with_name(clone.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    _run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(partial)], scratch)
    _run(["git", "checkout", "--quiet", "--detach", commit], partial)
    (partial / "dvc.lock").unlink(missing_ok=True)  # every stage runs here, on this seed
    shutil.rmtree(partial / "results", ignore_errors=True)  # no committed result is mixed in
    _run([str(Path(sys.executable).parent / "dvc"), "config", "--local", "core.analytics", "false"], partial)
    partial.rename(clone)
    return clone


def set_seed(params_file: Path, seed: int) -> None:
    text = params_file.read_text()
    new, count = re.subn(r"^seed: \d+$", f"seed: {seed}", text, flags=re.M)
    if count != 1:
        raise DoseError(f"{params_file}: expected one top-level `seed:` line, found {count}",
                        "check that `genreid recipe apply` wrote it")
    write_text(params_file, new)


def recipe_in_clone(point: Point, clone: Path, tiny: bool) -> str:
    """The recipe path ``genreid recipe apply`` reads in the clone: the committed one, or with --tiny a
    generated one with tiny.yaml as its base and the point's differences from synthetic_cpu.yaml."""
    if not tiny:
        return point.recipe.relative_to(REPO).as_posix()
    rel = Path("params") / "experiments" / "dose_response" / "tiny" / f"{point.name}.yaml"
    overrides = point_overrides(point.recipe)
    text = (f"# {point.name} on the tiny profile (written by scripts/dose_response.py --tiny): tiny.yaml with\n"
            f"# what {point.recipe.name} changes against synthetic_cpu.yaml. Numbers mean nothing.\n"
            f"_base_: ../../../tiny.yaml\n" + (dump_yaml(overrides) if overrides else ""))
    write_text(clone / rel, text)
    return rel.as_posix()


def copy_run(point: Point, seed: int, clone: Path, dest: Path, meta: dict[str, Any]) -> None:
    """Copy one finished run's per-run files into ``dest`` (through a partial folder; run.json last)."""
    resolved = read_yaml((clone / "params.yaml").read_text())
    datasets = resolved["datasets"]
    if len(datasets) != 1:
        raise DoseError(f"point {point.name} runs datasets {datasets}; the experiment reads one",
                        "keep `datasets: [synthetic]` in the recipes")
    ds, methods = datasets[0], list(resolved["train"]["methods"])
    results = clone / "results"
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    fingerprint = json.loads((results / "collected" / f"{ds}.json").read_text())["fingerprint"]
    for method in ("untrained", "baseline", *methods):
        for name in ("metrics.json", "provenance.json"):
            src = results / ds / method / name
            if not src.is_file():
                raise DoseError(f"{src} is missing after `dvc repro`", f"see the log under {clone / 'logs'}")
            (partial / method).mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, partial / method / name)
        recorded = json.loads((results / ds / method / "provenance.json").read_text()).get("seed")
        if recorded is not None and int(recorded) != seed:
            raise DoseError(f"{results / ds / method} was evaluated for seed {recorded}, not {seed}",
                            f"delete {clone} and rerun")
        archived = results / "seeds" / ds / method / fingerprint / f"seed_{seed}.json"
        if archived.is_file():
            target = partial / "seeds" / ds / method / fingerprint / archived.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(archived, target)
    for run in ("pretrain", *methods):
        src = results / ds / run / "view_fidelity.json"
        if src.is_file():
            (partial / run).mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, partial / run / "view_fidelity.json")
    shutil.copy2(results / "summary.csv", partial / "summary.csv")
    write_json(partial / RUN_FILE, {**meta, "methods": methods, "fingerprint": fingerprint, "dataset": ds})
    if dest.exists():
        shutil.rmtree(dest)
    partial.rename(dest)


def run_point(point: Point, seed: int, clone: Path, out: Path, tiny: bool, commit: str) -> float:
    recipe = recipe_in_clone(point, clone, tiny)
    log = clone / "logs" / f"{point.name}.log"
    start = time.monotonic()
    _run([sys.executable, "-m", "genreid.cli", "recipe", "apply", recipe], clone, log)
    set_seed(clone / "params.yaml", seed)
    _run([str(Path(sys.executable).parent / "dvc"), "repro"], clone, log)
    wall = time.monotonic() - start
    meta = {"point": point.name, "budget": point.budget, "stage3_epochs": point.stage3_epochs, "seed": seed,
            "order": point.order, "recipe": recipe, "tiny": tiny, "commit": commit, "wall_s": round(wall, 1),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    copy_run(point, seed, clone, out / point.name / f"seed_{seed}", meta)
    return wall


def is_done(out: Path, point: Point, seed: int) -> bool:
    return (out / point.name / f"seed_{seed}" / RUN_FILE).is_file()


def done_commits(out: Path) -> set[str]:
    return {json.loads(p.read_text()).get("commit") for p in out.glob(f"*/seed_*/{RUN_FILE}")}


# -- table -------------------------------------------------------------------------------------------------

def build_table(out: Path, points: list[Point], tiny: bool) -> list[str]:
    """table.md, table.csv and figure.png from the copies under ``out``; returns the files written."""
    runs = read_point_runs(out)
    if not runs:
        print(f"no finished run under {out}: nothing to tabulate")
        return []
    rows = dose_response_rows(runs)
    commits = sorted(c for c in done_commits(out) if c)
    described = {p.name: recipe_summary(p.recipe)[1] for p in points}
    lines = ["# Dose-response: GCL's gain against its generator's view fidelity", "",
             "Written by `python scripts/dose_response.py" + (" --tiny" if tiny else "") + "` from the runs under "
             "this folder (`<point>/seed_<n>/`); " + ("**tiny profile: the numbers mean nothing**. " if tiny else "")
             + f"Code: {', '.join(c[:12] for c in commits) or 'unknown'}"
             + (" (**several commits**: runs of different code are mixed)" if len(commits) > 1 else "") + ".", "",
             "Fidelity: the stage-2 generator's novel views (angles other than 0) of the validation images against "
             "SynthReID's true views, mean over angles and then over seeds (± std). Gains: mAP points, paired by "
             "seed with the control arm of the same seed and stage-3 length (run in that length's `default` "
             "point), mean [95 % t-interval] (seeds won / seeds paired); an interval excludes 0 only when the "
             "difference is resolved.", "", markdown_table(rows), "![dose response](figure.png)", "",
             "What the runs say (from the intervals alone; a point with one seed has none):", ""]
    lines += [f"- {sentence}" for sentence in findings(rows)]
    answers = conclusions(rows)
    if answers:
        lines += ["", "What the experiment answers:", ""] + [f"- {sentence}" for sentence in answers]
    lines += ["", "Points:", ""]
    lines += [f"- `{r.point}`: {described.get(r.point, '')}" for r in rows]
    written = [write_text(out / "table.md", "\n".join(lines) + "\n"), write_text(out / "table.csv", csv_table(rows)),
               plot_dose_response(rows, out / "figure.png")]
    return [str(p) for p in written]


# -- main --------------------------------------------------------------------------------------------------

def plan(points: list[Point], seeds: list[int], out: Path, times: TimeModel) -> float:
    """Print the plan (per seed, each point: done or its estimate) and return the seconds left."""
    total = 0.0
    for seed in seeds:
        previous = None
        print(f"seed {seed}:")
        for point in points:
            seconds, what = point_seconds(point, previous, times)
            if is_done(out, point, seed):
                print(f"  {point.name:<16} done")
            else:
                total += seconds
                print(f"  {point.name:<16} ~{_hours(seconds):>7}  {what}")
            previous = point
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:7]))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--points", nargs="+", help="point names (default: every recipe under "
                                                     "params/experiments/dose_response/)")
    parser.add_argument("--tiny", action="store_true", help="params/tiny.yaml as the base (testing the loop)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the time estimate, run nothing")
    parser.add_argument("--table-only", action="store_true", help="only rebuild table.md/.csv and figure.png")
    parser.add_argument("--scratch", type=Path, help="where the per-seed clones live (default "
                                                     ".dvc/tmp/dose_response[/tiny])")
    parser.add_argument("--out", type=Path, help="where the runs are copied and the table written (default "
                                                 "results/experiments/dose_response; --tiny: <scratch>/out)")
    args = parser.parse_args(argv)
    scratch = args.scratch or (DEFAULT_SCRATCH / "tiny" if args.tiny else DEFAULT_SCRATCH)
    out = args.out or (scratch / "out" if args.tiny else DEFAULT_OUT)
    times = TINY_TIMES if args.tiny else DEFAULT_TIMES
    try:
        points = discover_points(args.tiny, args.points)
        if args.table_only:
            for path in build_table(out, discover_points(args.tiny), args.tiny):
                print(f"wrote {path}")
            return 0
        left = plan(points, args.seeds, out, times)
        print(f"estimated wall time left: {_hours(left)} on 2 quiet cores ({len(points)} points x {len(args.seeds)} "
              f"seeds; copies under {out}, clones under {scratch})")
        if args.dry_run:
            return 0
        commit = head_commit()
        others = done_commits(out) - {commit, None}
        if others:
            raise DoseError(f"{out} holds runs of commit(s) {sorted(c[:12] for c in others)}, the repository is at "
                            f"{commit[:12]}", f"check out that commit to finish them, or move {out} away")
        changed = uncommitted_changes()
        if changed:
            print(f"note: the runs use the committed HEAD {commit[:12]}; uncommitted changes to {changed[:5]} "
                  "are not in them")
        for seed in args.seeds:
            todo = [p for p in points if not is_done(out, p, seed)]
            if not todo:
                continue
            clone = ensure_clone(scratch, seed, commit)
            for point in todo:
                print(f"[seed {seed}] {point.name}: dvc repro in {clone} (log: {clone / 'logs' / point.name}.log)",
                      flush=True)
                wall = run_point(point, seed, clone, out, args.tiny, commit)
                print(f"[seed {seed}] {point.name}: done in {_hours(wall)}", flush=True)
        for path in build_table(out, discover_points(args.tiny), args.tiny):
            print(f"wrote {path}")
        return 0
    except DoseError as exc:
        print(f"dose_response: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dose_response: stopped; rerun the same command to resume with the points not done", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

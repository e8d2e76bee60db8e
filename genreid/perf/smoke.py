"""Paper-shape smoke (``make smoke-paper``): the whole ``dvc repro`` of ``params/market1501.yaml`` (or
another real-dataset recipe, e.g. a UDA one: ``--recipe uda/dukemtmc_to_market1501.yaml``) at the
paper's shapes, widths and batch sizes, with only the schedule cut to one iteration per stage, on
small fake archives of the recipe's datasets (its UDA source too) and random weight files in a
temporary folder, on CPU.

It catches what the tiny profile cannot: a crash or an out-of-memory at paper shapes. Every
``python`` a stage starts runs under a watchdog (a ``python`` shim first on ``PATH``) that records
the peak memory of its process tree and its wall time and kills it past the limit, so an over-budget
stage fails the smoke instead of the machine. Memory is the tree's summed proportional set size (PSS:
a page shared by n processes counts 1/n to each), so the DataLoader workers of the paper recipes
(``runtime.num_workers: 4``, forked from the stage) do not count the stage's pages again; for one
process it is its RSS less what it shares. Afterwards every output ``dvc.lock`` lists must exist.
``dvc repro --no-commit`` keeps the outputs out of the DVC cache (half the disk: the smoke checks the
outputs, not the cache).

What the smoke recipe changes besides the schedule, and why:
- ``runtime.device: cpu``; ``data.expected_counts: off`` (the archive is small);
- ``mesh.*`` paths to the random SPIN-format HMR checkpoint, SMPL mean parameters and an
  SMPL-format body file (the procedural body saved in SMPL's layout) in the temporary folder;
- memory tools that keep the update identical: ``warmup.micro_batch`` (stage 1 in slices of whole
  BN groups) and ``runtime.activation_checkpointing`` (stages 2 and 3 recompute conv blocks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

# the schedule of the smoke: one iteration per stage, validation at that epoch
SCHEDULE = {
    "warmup": {"epochs": 1, "iters_per_epoch": 1, "eval_every": 1},
    "source": {"epochs": 1, "iters_per_epoch": 1, "eval_every": 1, "warmup_epochs": 0, "milestones": []},
    "pretrain": {"epochs": 1, "iters_per_epoch": 1},
    "train": {"epochs": 1, "iters_per_epoch": 1, "eval_every": 1},
}
MEMORY_TOOLS = {"warmup": {"micro_batch": 64}, "runtime": {"activation_checkpointing": True}}


@dataclass
class Assets:
    archives: dict[str, Path]  # dataset name -> archive (its canonical file name)
    torch_home: Path
    hmr_checkpoint: Path
    smpl_mean_params: Path
    body_model: Path


def recipe_datasets(recipe: Path) -> list[str]:
    """The real datasets a recipe reads: its ``datasets`` and, for UDA, ``warmup.source_dataset``."""
    from genreid.config import resolve_recipe

    tree = resolve_recipe(recipe)
    names = list(tree.get("datasets", []))
    source = (tree.get("warmup") or {}).get("source_dataset")
    return names + ([source] if source and source not in names else [])


FAKE_ARCHIVES = ("dukemtmc", "market1501", "msmt17")


def check_recipe(recipe: Path) -> list[str]:
    """The recipe's real datasets; a recipe that reads none (SynthReID only) or one the smoke cannot fake is
    refused with the reason before any working folder is made."""
    from genreid.errors import GenreidError

    names = recipe_datasets(recipe)
    unknown = [d for d in names if d not in FAKE_ARCHIVES]
    if unknown or not names:
        raise GenreidError(f"{recipe.name} reads {', '.join(unknown or names) or 'no dataset'}: the paper-shape "
                           f"smoke fakes only the real archives ({', '.join(FAKE_ARCHIVES)}) at the papers' image "
                           "shapes", "pass a real-dataset recipe (--recipe market1501.yaml, or RECIPE=market1501.yaml "
                                     "with make); run SynthReID recipes with `genreid recipe apply params/<recipe> && "
                                     "dvc repro`")
    return names


def write_archive(folder: Path, dataset: str, *, train_ids: int, test_ids: int, size: tuple[int, int],
                  cams_per_id: int, per_cam: int) -> Path:
    """A fake archive of ``dataset`` in its real layout and canonical file name, one colour per identity."""
    from genreid.data.registry import get_dataset_class
    from genreid.data.testing import TreeShape, archive_tree, make_duke_tree, make_market_tree, make_msmt_tree

    makers = {"market1501": make_market_tree, "dukemtmc": make_duke_tree, "msmt17": make_msmt_tree}
    if dataset not in makers:
        raise ValueError(f"the paper-shape smoke has no fake archive for dataset {dataset!r} (known: {sorted(makers)})")
    shape = TreeShape(train_ids=train_ids, test_ids=test_ids, cams_per_id=cams_per_id, per_cam=per_cam, size=size,
                      id_colours=True)
    tree = makers[dataset](folder / "tree", shape)
    archive = archive_tree(tree.root, folder / "sources" / dataset / get_dataset_class(dataset).archive_name)
    shutil.rmtree(folder / "tree")
    return archive


def write_assets(folder: Path, train_ids: int = 24, test_ids: int = 4, size: tuple[int, int] = (128, 64),
                  cams_per_id: int = 4, per_cam: int = 8, datasets: tuple[str, ...] = ("market1501",)) -> Assets:
    """Fake archives of ``datasets`` (JPEGs of ``size``), random ImageNet-format ResNet-50 weights under a
    private ``TORCH_HOME``, a random SPIN-format HMR checkpoint, SMPL mean parameters and body file.

    768 training images, 32 per identity: the paper's warm-up sampler takes one group of 16 per
    pseudo-identity per pass, so a batch of 256 needs 16 clusters; with fewer images per identity
    than k1 = 30, the k-reciprocal neighbourhoods of an untrained network join identities."""
    import torch
    import torchvision

    from genreid.body.procedural import build_procedural_body
    from genreid.meshes.hmr import build_hmr

    folder.mkdir(parents=True, exist_ok=True)
    archives = {d: write_archive(folder, d, train_ids=train_ids, test_ids=test_ids, size=size,
                                 cams_per_id=cams_per_id, per_cam=per_cam) for d in datasets}
    torch.manual_seed(0)
    torch_home = folder / "torch"
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    target = torch_home / "hub" / "checkpoints" / os.path.basename(weights.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.resnet50().state_dict(), target)
    hmr_dir = folder / "hmr"
    hmr_dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    mean_params = hmr_dir / "smpl_mean_params.npz"
    eye6 = np.tile(np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0], np.float32), 24)
    np.savez(mean_params, pose=eye6 + 0.05 * rng.normal(size=144).astype(np.float32),
             shape=np.zeros(10, np.float32), cam=np.array([0.9, 0.0, 0.0], np.float32))
    hmr_checkpoint = hmr_dir / "model_checkpoint.pt"
    torch.save({"model": build_hmr(None, mean_params).state_dict()}, hmr_checkpoint)
    body = hmr_dir / "SMPL_NEUTRAL.npz"
    np.savez(body, **build_procedural_body(0))
    return Assets(archives, torch_home, hmr_checkpoint, mean_params, body)


def smoke_recipe(assets: Assets, base: str = "market1501.yaml") -> dict:
    """The recipe written next to ``params/market1501.yaml`` in the copy (``_base_`` is relative)."""
    recipe: dict = {"_base_": base, "runtime": {"device": "cpu"}, "data": {"expected_counts": "off"},
                    "mesh": {"hmr_checkpoint": str(assets.hmr_checkpoint),
                             "smpl_mean_params": str(assets.smpl_mean_params),
                             "body_model": str(assets.body_model)}}
    for section, keys in [*SCHEDULE.items(), *MEMORY_TOOLS.items()]:
        recipe.setdefault(section, {}).update(keys)
    return recipe


SHIM = '''#!{python}
"""python shim of the paper-shape smoke: run the real interpreter, record the peak memory of its
process tree (summed PSS, sampled every 0.2 s; at least the largest single child's peak RSS) and
wall time, kill the tree past {limit_gb} GB."""
import json, os, subprocess, sys, time
LIMIT_KB = {limit_kb}


def own_kb(pid):
    """Proportional set size (a page shared by n processes counts 1/n to each), so DataLoader
    workers forked from a stage do not count the stage's pages again; RSS where PSS is unreadable."""
    for name, key in ((f"/proc/{{pid}}/smaps_rollup", "Pss:"), (f"/proc/{{pid}}/status", "VmRSS:")):
        try:
            with open(name) as fh:
                return next(int(line.split()[1]) for line in fh if line.startswith(key))
        except (OSError, ValueError, StopIteration):
            continue
    return 0


def tree_kb(pid):
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += own_kb(p)
        try:
            for task in os.listdir(f"/proc/{{p}}/task"):
                with open(f"/proc/{{p}}/task/{{task}}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            pass
    return total


t0 = time.time()
proc = subprocess.Popen([{python!r}, *sys.argv[1:]])
peak, killed = 0, False
while proc.poll() is None:
    peak = max(peak, tree_kb(proc.pid))
    if peak > LIMIT_KB and not killed:
        proc.kill()
        killed = True
    time.sleep(0.2)
import resource
peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
with open({log!r}, "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "rc": proc.returncode, "killed_over_limit": killed,
                         "peak_mib": round(peak / 1024, 1), "wall_s": round(time.time() - t0, 1)}}) + "\\n")
sys.exit(137 if killed else proc.returncode)
'''


def write_shim(bin_dir: Path, log: Path, limit_gb: float) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "python"
    shim.write_text(SHIM.format(python=sys.executable, limit_gb=limit_gb, limit_kb=int(limit_gb * 2**20),
                                log=str(log)))
    shim.chmod(0o755)
    return shim


def stage_label(argv: list[str]) -> str:
    """``stages/train.py --dataset d --method m`` -> ``train d m``; the resume guard by its folder."""
    if argv[:2] == ["-m", "genreid.pipeline.resume_guard"]:
        return "resume_guard " + (argv[2] if len(argv) > 2 else "")
    script = Path(argv[0]).stem if argv else "?"
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--dataset", "--method")]
    return " ".join([script, *values])


def copy_repo(root: Path, dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, without dvc.lock and earlier results."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = root / rel
        if rel == "dvc.lock" or rel.startswith("results/") or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)


def locked_outputs(repo: Path) -> dict[str, list[str]]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {name: [o["path"] for o in stage.get("outs", [])] for name, stage in lock["stages"].items()}


def check_time(report: dict, *, advisory: bool) -> None:
    """Compare the run's wall time with its bound: a problem, or with ``advisory`` a note.

    Wall time depends on the CPU and on what else the machine runs, so a bound set on one quiet
    machine is a benchmark target, not a pass/fail criterion on another one (CI runs the smoke with
    ``advisory``: crashes, memory and missing outputs still fail it; the time is printed)."""
    limit_min, seconds = report["time_limit_min"], report.get("total_seconds")
    if seconds is None or seconds <= limit_min * 60:
        return
    message = f"took {seconds:.0f} s, over {limit_min} min"
    if advisory:
        report.setdefault("notes", []).append(message + " (advisory: the bound is set on a quiet reference "
                                              "machine, see BENCHMARKS.md)")
    else:
        report["problems"].append(message)


def run_smoke(root: Path, work: Path, *, limit_gb: float = 12.0, time_limit_min: float = 20.0,
              dvc_timeout_s: int = 3600, recipe: str = "market1501.yaml", time_advisory: bool = False) -> dict:
    """Build everything under ``work``, run ``dvc repro`` of ``params/<recipe>`` (schedule cut) in a copy
    of ``root``; returns the report. ``time_advisory``: see :func:`check_time`."""
    t0 = time.time()
    repo, log = work / "repo", work / "stage_rss.jsonl"
    assets = write_assets(work / "assets", datasets=tuple(recipe_datasets(root / "params" / recipe)))
    copy_repo(root, repo)
    for dataset, archive in assets.archives.items():
        target = repo / "sources" / dataset / archive.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(archive, target)
    (repo / "params" / "smoke_paper.yaml").write_text(
        f"# paper-shape smoke: params/{recipe}, schedule cut to one iteration per stage (genreid.perf.smoke)\n"
        + yaml.safe_dump(smoke_recipe(assets, recipe), sort_keys=False))
    venv_bin = Path(sys.executable).parent
    shim_bin = write_shim(work / "bin", log, limit_gb).parent
    env = {**os.environ, "PATH": f"{shim_bin}{os.pathsep}{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(repo), "TORCH_HOME": str(assets.torch_home), "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "smoke", "GIT_AUTHOR_EMAIL": "smoke@example.com", "GIT_COMMITTER_NAME": "smoke",
           "GIT_COMMITTER_EMAIL": "smoke@example.com", "OMP_WAIT_POLICY": "PASSIVE"}

    def run(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)

    dvc = str(venv_bin / "dvc")
    setup = [[sys.executable, "-m", "genreid.cli", "recipe", "apply", "params/smoke_paper.yaml"],
             ["git", "init", "-q"], [dvc, "config", "--local", "core.analytics", "false"], ["git", "add", "-A"],
             ["git", "commit", "-q", "-m", "smoke"]]
    report: dict = {"recipe": recipe, "work": str(work), "limit_gb": limit_gb, "time_limit_min": time_limit_min,
                    "problems": []}
    for args in setup:
        proc = run(args)
        if proc.returncode:
            report["problems"].append(f"{' '.join(args)} failed: {(proc.stdout + proc.stderr)[-2000:]}")
            return report
    t_repro = time.time()
    proc = run([dvc, "repro", "--no-commit"], timeout=dvc_timeout_s)
    report["repro_seconds"] = round(time.time() - t_repro, 1)
    report["total_seconds"] = round(time.time() - t0, 1)
    (work / "dvc_repro.log").write_text(proc.stdout + proc.stderr)
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    report["processes"] = [{"what": stage_label(r["argv"]), **{k: r[k] for k in r if k != "argv"}} for r in rows]
    if proc.returncode:
        report["problems"].append(f"dvc repro failed ({proc.returncode}); log {work / 'dvc_repro.log'}: "
                                  + (proc.stdout + proc.stderr)[-1500:])
    for r in report["processes"]:
        if r["killed_over_limit"] or r["peak_mib"] > limit_gb * 1024:
            report["problems"].append(f"{r['what']}: peak memory {r['peak_mib']} MiB over {limit_gb} GB")
    if not proc.returncode:
        missing = [f"{stage}: {p}" for stage, outs in locked_outputs(repo).items() for p in outs
                   if not (repo / p).exists()]
        report["problems"] += [f"missing output {m}" for m in missing]
    check_time(report, advisory=time_advisory)
    return report


def markdown(report: dict) -> str:
    recipe = report.get("recipe", "market1501.yaml")
    lines = [f"Paper-shape smoke of params/{recipe}: dvc repro {report.get('repro_seconds', '-')} s, total "
             f"{report.get('total_seconds', '-')} s (bounds: {report['time_limit_min']} min, "
             f"{report['limit_gb']} GB per stage)", "", "| process | rc | peak memory (MiB) | wall (s) |",
             "|---|---|---|---|"]
    for r in report.get("processes", []):
        if not r["what"].startswith("resume_guard"):
            lines.append(f"| {r['what']} | {r['rc']} | {r['peak_mib']} | {r['wall_s']} |")
    lines += ["", "PASS" if not report["problems"] else "FAIL:\n- " + "\n- ".join(report["problems"])]
    lines += [f"note: {note}" for note in report.get("notes", [])]
    return "\n".join(lines) + "\n"

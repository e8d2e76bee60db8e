"""The DVC pipeline: dvc.yaml matches the code it runs, the resume guard, and the whole pipeline
through `dvc repro` on params/tiny.yaml in a temporary git repository."""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from genreid.pipeline.resume_guard import SIGNATURE_FILE, guard

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]
# Reads of the whole config that are not param dependencies: the resolved-config dump next to
# outputs, and the report's settings fingerprint (its inputs already change when a param does).
UNTRACKED_CFG_USES = {"model_dump"}


def _body(stage: dict) -> dict:
    return stage.get("do", stage)


def _scripts(stage: dict) -> list[Path]:
    """Python files a stage's commands run (stages/x.py, python -m genreid.y)."""
    cmds = _body(stage)["cmd"]
    out = []
    for cmd in [cmds] if isinstance(cmds, str) else cmds:
        if m := re.search(r"python (stages/\w+\.py)", cmd):
            out.append(ROOT / m.group(1))
        if m := re.search(r"python -m ([\w.]+)", cmd):
            out.append(ROOT / (m.group(1).replace(".", "/") + ".py"))
    return out


def _module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None


def _genreid_imports(path: Path) -> set[str]:
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1]) if "genreid" in path.parts else ""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                parent = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(parent + ([mod] if mod else []))
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] == "genreid"}


def code_units(script: Path) -> set[str]:
    """genreid/<subpackage> folders and genreid/<module>.py files a script imports, transitively."""
    files: set[Path] = set()
    todo = [script]
    while todo:
        for mod in _genreid_imports(todo.pop()):
            parts = mod.split(".")
            for i in range(1, len(parts) + 1):
                f = _module_file(".".join(parts[:i]))
                if f is not None and f not in files:
                    files.add(f)
                    todo.append(f)
    units = set()
    for f in files:
        rel = f.relative_to(ROOT).parts
        units.add("/".join(rel) if len(rel) == 2 else "/".join(rel[:2]))
    return units


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_the_code_it_imports(name):
    body = _body(STAGES[name])
    deps = set(body["deps"])
    scripts = _scripts(STAGES[name])
    assert scripts, f"{name}: no python command found"
    for script in scripts:
        assert script.is_file(), f"dvc.yaml stage {name} runs {script.relative_to(ROOT)}, which does not exist"
        if script.is_relative_to(ROOT / "stages"):
            assert script.relative_to(ROOT).as_posix() in deps, f"{name} must depend on {script.name}"
        missing = code_units(script) - deps
        assert not missing, f"dvc.yaml stage {name} imports {sorted(missing)} without depending on them"
    assert "genreid" not in deps and "genreid/" not in deps, f"{name} depends on all of genreid/"


def cfg_reads(script: Path) -> set[str]:
    """Dotted param keys a stage file reads from ``cfg`` (aliases like ``m = cfg.mesh`` count whole)."""
    tree = ast.parse(script.read_text())
    reads: set[str] = set()
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id == "cfg"):
            continue
        chain, cur = [], node
        while isinstance(parents.get(cur), ast.Attribute):
            cur = parents[cur]
            chain.append(cur.attr)
        if not chain or chain[-1] in UNTRACKED_CFG_USES:
            continue
        call = parents.get(cur)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "getattr":
            chain.append("${item}")  # getattr(cfg.data, dataset): the dataset's own section
        reads.add(".".join(chain))
    return reads


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_lists_the_params_it_reads(name):
    params = [p for p in _body(STAGES[name]).get("params", []) if isinstance(p, str)]
    for script in _scripts(STAGES[name]):
        if not script.is_relative_to(ROOT / "stages") or not script.is_file():
            continue
        for key in cfg_reads(script):
            key = key.replace("${item}", "${item}" if "foreach" in STAGES[name] else "${item.dataset}")
            covered = any(key == p or key.startswith(p + ".") for p in params)
            assert covered, f"dvc.yaml stage {name}: {script.name} reads {key} but params lists {params}"


def test_evaluation_params_never_reach_training_or_meshes():
    for name in ("prepare", "meshes", "warmup", "pretrain", "train"):
        params = _body(STAGES[name]).get("params", [])
        assert not any(str(p).startswith(("eval", "report")) for p in params), name
    assert not any(str(p).startswith(("pretrain", "train", "model")) for p in _body(STAGES["meshes"])["params"])


def test_resume_guard_keeps_a_killed_run_and_restarts_a_changed_one(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "a.py").write_text("x = 1\n")
    params, inp = tmp_path / "params.yaml", tmp_path / "manifest.csv"
    params.write_text("seed: 1\ntrain: {epochs: 2}\nruntime: {num_threads: 2}\n")
    inp.write_text("path,pid\na.jpg,1\n")
    ckpt, live = tmp_path / "ckpt", tmp_path / "live"
    run = lambda: guard([ckpt, live], [inp], params, [tmp_path / "code"])
    assert run() is False and (ckpt / SIGNATURE_FILE).is_file()
    for folder in (ckpt, live):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "ckpt_000000001.pt").write_text("state")
    assert run() is True and (ckpt / "sub" / "ckpt_000000001.pt").is_file()  # a kill + rerun resumes
    params.write_text("seed: 1\ntrain: {epochs: 2}\nruntime: {num_threads: 8}\n")
    assert run() is True  # runtime knobs do not restart training
    params.write_text("seed: 1\ntrain: {epochs: 2}\nruntime: {num_threads: 8, cpu_isa_cap: 'off'}\n")
    assert run() is True  # nor does the cap's default
    for change in (lambda: params.write_text("seed: 1\ntrain: {epochs: 2}\nruntime: {cpu_isa_cap: avx2}\n"),
                   lambda: params.write_text("seed: 2\ntrain: {epochs: 2}\n"),
                   lambda: inp.write_text("path,pid\na.jpg,2\n"),
                   lambda: (tmp_path / "code" / "a.py").write_text("x = 2\n")):
        (ckpt / "ckpt_000000002.pt").write_text("state")
        (live / "metrics.json").write_text("{}")
        change()
        assert run() is False
        assert sorted(p.name for p in ckpt.iterdir()) == [SIGNATURE_FILE] and not any(live.iterdir())


# ----------------------------------------------------------------------------------------------
# End to end: the whole pipeline through DVC on the tiny profile.

def _env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(repo),
               DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="e2e", GIT_AUTHOR_EMAIL="e2e@example.com",
               GIT_COMMITTER_NAME="e2e", GIT_COMMITTER_EMAIL="e2e@example.com", GENREID_LOG="WARNING")
    return env


def _run(args: list[str], repo: Path, timeout: int = 600) -> str:
    proc = subprocess.run(args, cwd=repo, env=_env(repo), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{out[-6000:]}"
    return out


def _ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _copy_repo(dest: Path) -> None:
    """The repository's files (tracked, and untracked but not ignored) without earlier results, except the
    committed seed archive (a run of another recipe must leave it as it is)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        earlier = rel.startswith("results/") and not rel.startswith("results/seeds/")
        if rel == "dvc.lock" or earlier or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)


def _tiny_repo(tmp_path: Path, recipe: str) -> tuple[Path, str]:
    """A committed git copy of the project with ``recipe`` applied; returns it and the venv's dvc."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    dvc = str(Path(sys.executable).parent / "dvc")
    for cmd in ([sys.executable, "-m", "genreid.cli", "recipe", "apply", recipe], ["git", "init", "-q"],
                [dvc, "config", "--local", "core.analytics", "false"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", recipe]):
        _run(cmd, repo)
    return repo, dvc


@pytest.mark.slow
def test_dvc_repro_on_the_tiny_profile(tmp_path):
    repo, dvc = _tiny_repo(tmp_path, "params/tiny.yaml")
    committed = {p: p.read_bytes() for p in (repo / "results" / "seeds").rglob("*.json")}
    assert len(committed) >= 30  # the default recipe's five seeds of six methods

    start = time.monotonic()
    first = _run([dvc, "repro"], repo, timeout=900)
    took = time.monotonic() - start
    ran = _ran_stages(first)
    assert "faiss.loader" not in first and "Could not load library" not in first  # other libraries' INFO hidden
    assert {"prepare@synthetic", "warmup@synthetic", "train@synthetic-gcl_plus", "train@synthetic-control_aug",
            "train@synthetic-control_none", "train@synthetic-oracle_views", "true_views@synthetic",
            "report"} <= ran, first[-3000:]

    readme = (repo / "results" / "README.md").read_text()
    summary = list(csv.DictReader((repo / "results" / "summary.csv").open()))
    assert [r["method"] for r in summary] == ["untrained", "baseline", "control_none", "control_aug",
                                              "oracle_views", "gcl", "gcl_plus"], summary
    for rec in summary:
        method = rec["method"]
        assert rec["dataset"] == "synthetic" and rec["n_seeds"] == "1" and rec["seeds"] == "1", rec
        values = [float(rec[f"{m}_mean"]) for m in ("mAP", "R1", "R5", "R10", "mINP")]
        assert all(0.0 <= v <= 100.0 for v in values), (method, values)
        assert values[1] <= values[2] <= values[3], (method, values)  # R1 <= R5 <= R10
        assert rec["status"] == "no published target"
        assert f"| synthetic | unsupervised | {method} | 1 | " in readme, (method, readme)
    headline = json.loads((repo / "results" / "metrics.json").read_text())
    assert list(headline["synthetic"]) == ["baseline", "control_aug", "control_none", "gcl", "gcl_plus",
                                           "oracle_views", "untrained"]  # sorted keys
    assert "![cmc](plots/cmc.png)" in readme
    assert (repo / "results" / "plots" / "cmc.png").read_bytes()[:4] == b"\x89PNG"
    tiny_records = set((repo / "results" / "seeds" / "synthetic" / "gcl").glob("*/seed_1.json"))
    assert len(tiny_records - set(committed)) == 1  # filed under the tiny recipe's own fingerprint
    assert {p: p.read_bytes() for p in committed} == committed  # the default recipe's seeds untouched
    default_group = {p.parent.name for p in committed if p.parent.parent.name == "gcl"}
    for fp in default_group:  # every committed settings group is listed with its seeds, none averaged in
        seeds = sorted(int(q.stem.split("_")[1]) for q in committed
                       if q.parent.name == fp and q.parent.parent.name == "gcl")
        line = next(x for x in readme.splitlines() if f"seeds/synthetic/gcl/{fp}/ (" in x)
        assert line.endswith(f"seeds {', '.join(map(str, seeds))})`"), (line, seeds)

    second = _run([dvc, "repro"], repo)
    assert _ran_stages(second) == set(), second
    assert "up to date" in second.lower() or "didn't change" in second.lower(), second

    _run([dvc, "plots", "show", "-o", str(tmp_path / "plots_html")], repo)
    html = (tmp_path / "plots_html" / "index.html").read_text()
    for title in ("CMC on the test split, all methods", "Stage 1 (warm-up)", "Stage 2 (generator pre-training)",
                  "Stage 3 (joint training): losses", "Stage 3 (joint training): validation"):
        assert title in html, title
    assert "cdn.jsdelivr" not in html  # the offline page (plots/offline.html) carries the libraries
    for picture in ("results_plots_cmc.png", "synthetic_gcl_plus_ranked_lists.png", "pretrain_views.png",
                    "meshes_overlay.png"):
        assert picture in html, picture

    queries = yaml.safe_load((repo / "params.yaml").read_text())["eval"]["ranked_list_queries"]
    exp = _run([dvc, "exp", "run", "-S", f"eval.ranked_list_queries={queries + 1}"], repo)
    reran = _ran_stages(exp)
    evaluations = {s for s in ran if s.startswith("evaluate")}
    assert evaluations and evaluations <= reran, exp
    # validate_params checks params.yaml (a file dep) whenever it changes; nothing depends on it
    allowed = evaluations | {"collect@synthetic", "report", "validate_params"}
    assert reran <= allowed, f"an eval param reran {sorted(reran)}"
    json.loads((repo / "results" / "synthetic" / "gcl" / "metrics.json").read_text())
    # metrics files hold numbers only: comparing experiments lists no commit hash, timestamp or setting
    shown = json.loads(_run([dvc, "metrics", "show", "--json"], repo).strip().splitlines()[-1])
    leaves = [leaf for rev in shown.values() for per_file in rev["data"].values() for leaf in _leaves(per_file["data"])]
    assert len(leaves) > 50 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in leaves), \
        [v for v in leaves if not isinstance(v, (int, float))]

    # A runtime-only change reruns the trainers, which resume from their finished checkpoints (the resume
    # guard ignores runtime) and write the very same model files: nothing retrains downstream.
    models = _model_hashes(repo)  # one chain of trainers is enough to show it (and the cheapest)
    _run([dvc, "exp", "run", "-S", "runtime.num_workers=1", "train@synthetic-gcl_plus"], repo)
    assert _model_hashes(repo) == models
    for run in ("baseline", "pretrain", "gcl_plus"):
        assert json.loads((repo / "results" / "synthetic" / run / "train" / "summary.json").read_text())["resumed"]
    print(f"tiny pipeline: first dvc repro {took:.0f} s")


def _leaves(tree) -> list:
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    return [leaf for v in tree for leaf in _leaves(v)] if isinstance(tree, list) else [tree]


def _warmup_rank(rank: int, port: int, repo: str, out: str) -> None:
    """One process of the stage-1 warm-up run directly through the engine, as the stage runs it."""
    from genreid.config import load_config
    from genreid.data.manifest import load_prepared
    from genreid.engine.context import RunContext
    from genreid.warmup.run import train_warmup

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    cfg = load_config(Path(repo) / "params.yaml")
    import torch

    torch.set_num_threads(cfg.runtime.num_threads)
    tables = load_prepared(Path(repo) / "data" / "prepared" / "synthetic", splits=("train", "val"))
    ctx = RunContext(seed=cfg.seed, height=cfg.data.height, width=cfg.data.width, model_dir=Path(out) / "models",
                     results_dir=Path(out) / "results", runtime=cfg.runtime, device="cpu")
    train_warmup(tables["train"], tables["val"], cfg.warmup, cfg.model, ctx)


@pytest.mark.slow
def test_dvc_repro_runs_every_trainer_under_torchrun(tmp_path):
    """runtime.nproc_per_node: 2 on the tiny recipe: dvc repro runs the warm-up, the generator pre-training
    and a joint training each in 2 gloo processes, and the warm-up's encoder is the one the engine's own
    2-process run gives (same weights, same validation mAP per epoch)."""
    import socket

    import torch
    import torch.multiprocessing as mp

    from genreid.models.id_encoder import load_encoder

    repo, dvc = _tiny_repo(tmp_path, "params/tiny.yaml")
    tree = yaml.safe_load((repo / "params.yaml").read_text())
    tree["runtime"]["nproc_per_node"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    _run(["git", "commit", "-qam", "two processes per node"], repo)

    env_log = _run([dvc, "repro", "train@synthetic-gcl_plus"], repo, timeout=1200)
    assert {"warmup@synthetic", "pretrain@synthetic", "train@synthetic-gcl_plus"} <= _ran_stages(env_log)
    for run in ("baseline", "pretrain", "gcl_plus"):
        summary = json.loads((repo / "results" / "synthetic" / run / "train" / "summary.json").read_text())
        assert summary["world_size"] == 2, (run, summary.get("world_size"))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_warmup_rank, args=(port, str(repo), str(tmp_path / "engine")), nprocs=2, join=True)
    via_dvc, dvc_extra = load_encoder(repo / "models" / "synthetic" / "baseline" / "encoder.pt")
    direct, direct_extra = load_encoder(tmp_path / "engine" / "models" / "encoder.pt")
    assert dvc_extra["val_map_history"] == direct_extra["val_map_history"] and dvc_extra["val_map_history"]
    assert dvc_extra["selected_epoch"] == direct_extra["selected_epoch"]
    for (name, a), b in zip(via_dvc.state_dict().items(), direct.state_dict().values()):
        assert torch.equal(a, b), name


def _model_hashes(repo: Path) -> dict[str, str]:
    """md5 of every trained model file as dvc.lock records it."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for st in lock.values() for o in st.get("outs", [])
            if o["path"].endswith((".pt",)) and o["path"].startswith("models/")}


UDA_TINY = "params/uda/tiny_synthetic_to_synthetic_b.yaml"


def test_default_params_create_no_uda_stage():
    from genreid.config.loader import read_yaml
    from genreid.pipeline.dvc_stages import load_stages

    names = set(load_stages(ROOT / "dvc.yaml", read_yaml((ROOT / "params.yaml").read_text())))
    assert "warmup@synthetic" in names
    assert not {n for n in names if n.split("@")[0] in ("prepare_source", "source", "warmup_uda", "evaluate_source",
                                                         "evaluate_direct")}, names


@pytest.mark.slow
def test_dvc_repro_uda_on_the_tiny_profile(tmp_path):
    """The two-domain SynthReID demo shrunk: source pre-training on domain a, UDA on domain b, report rows."""
    repo, dvc = _tiny_repo(tmp_path, UDA_TINY)
    start = time.monotonic()
    first = _run([dvc, "repro"], repo, timeout=900)
    took = time.monotonic() - start
    ran = _ran_stages(first)
    assert {"prepare_source@synthetic", "source@synthetic", "evaluate_source@synthetic", "prepare@synthetic_b",
            "warmup_uda@synthetic_b", "evaluate_direct@synthetic_b", "train@synthetic_b-gcl",
            "train@synthetic_b-gcl_plus", "collect@synthetic_b", "report"} <= ran, first[-3000:]
    assert not any(s.startswith("warmup@") for s in ran), ran  # the target's stage 1 starts from the source

    from genreid.models.id_encoder import load_encoder

    _, warm = load_encoder(repo / "models" / "synthetic_b" / "baseline" / "encoder.pt")
    assert warm["initialised_from"] == "models/synthetic/source/encoder.pt"
    _, src = load_encoder(repo / "models" / "synthetic" / "source" / "encoder.pt")
    assert src["method"] == "supervised_source" and src["selected_on"] == "val_map"
    on_source = json.loads((repo / "results" / "synthetic" / "source" / "metrics.json").read_text())
    direct = json.loads((repo / "results" / "synthetic_b" / "direct" / "metrics.json").read_text())
    untrained = json.loads((repo / "results" / "synthetic_b" / "untrained" / "metrics.json").read_text())
    assert 0 <= on_source["mAP"] <= 100 and direct["mAP"] != untrained["mAP"]

    summary = list(csv.DictReader((repo / "results" / "summary.csv").open()))
    assert [(r["dataset"], r["setting"], r["method"]) for r in summary] == [
        ("synthetic_b", "from_synthetic", m) for m in ("untrained", "direct", "baseline", "gcl", "gcl_plus")], summary
    readme = (repo / "results" / "README.md").read_text()
    assert "| synthetic_b | from_synthetic | direct | 1 | " in readme, readme

    second = _run([dvc, "repro"], repo)
    assert _ran_stages(second) == set(), second
    print(f"tiny UDA pipeline: first dvc repro {took:.0f} s")

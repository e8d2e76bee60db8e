"""A training stage asked for several processes starts itself under torchrun (what lets `dvc repro`
train on several GPUs); one process, or a process torchrun started, trains in place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genreid.config import load_config, resolve_recipe
from genreid.errors import ConfigError
from genreid.utils.launch import LaunchPlan, needs_launch, torchrun_command

ROOT = Path(__file__).resolve().parents[1]
TOY_TRAINER = '''
import json, os, sys
from genreid.stage import run_stage, stage_parser

def body(cfg, args):
    rank = os.environ.get("RANK", "alone")
    with open(os.path.join(os.environ["TOY_OUT"], f"rank_{rank}.json"), "w") as fh:
        json.dump({"world_size": os.environ.get("WORLD_SIZE"), "dataset": args.dataset,
                   "threads": cfg.runtime.num_threads}, fh)

if __name__ == "__main__":
    sys.exit(run_stage(body, stage_parser("toy trainer"), trainer=True))
'''


def _run_toy(tmp_path: Path, **runtime) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    tree = resolve_recipe(ROOT / "params" / "tiny.yaml")
    tree["runtime"].update(runtime)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    (tmp_path / "toy_trainer.py").write_text(TOY_TRAINER)
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID")}
    env.update(TOY_OUT=str(out), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "toy_trainer.py", "--dataset", "synthetic"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    return proc, {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def test_two_processes_per_node_run_the_stage_under_torchrun(tmp_path):
    proc, ranks = _run_toy(tmp_path, nproc_per_node=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ranks == {f"rank_{r}": {"world_size": "2", "dataset": "synthetic", "threads": 2} for r in (0, 1)}
    assert "under torchrun" in proc.stderr


def test_one_process_trains_in_place(tmp_path):
    proc, ranks = _run_toy(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ranks == {"rank_alone": {"world_size": None, "dataset": "synthetic", "threads": 2}}


def test_torchrun_command_for_one_and_several_nodes(monkeypatch):
    for name in ("LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    one = LaunchPlan(nproc_per_node=4)
    assert torchrun_command(one, "stages/warmup.py", ["--dataset", "market1501"]) == [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "4", "--standalone",
        "stages/warmup.py", "--dataset", "market1501"]
    two = LaunchPlan(nproc_per_node=8, nnodes=2, node_rank=1, master_addr="10.1.2.3", master_port=29600)
    assert torchrun_command(two, "stages/train.py", [])[3:] == [
        "--nproc_per_node", "8", "--nnodes", "2", "--node_rank", "1", "--master_addr", "10.1.2.3",
        "--master_port", "29600", "stages/train.py"]
    assert needs_launch(one) and needs_launch(LaunchPlan(nnodes=2)) and not needs_launch(LaunchPlan())
    monkeypatch.setenv("LOCAL_RANK", "0")  # already a torchrun worker: never launched again
    assert not needs_launch(one)


def test_a_node_rank_outside_the_nodes_is_refused(tmp_path):
    tree = resolve_recipe(ROOT / "params" / "tiny.yaml")
    tree["runtime"].update(nnodes=2, node_rank=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    with pytest.raises(ConfigError, match="node_rank 2 must be below runtime.nnodes 2"):
        load_config(tmp_path / "params.yaml")

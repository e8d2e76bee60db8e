"""SIGKILL the real stage scripts at a seeded random point, rerun them, and check the result
equals an uninterrupted run (CPU, fixed seed) and that no final output existed after the kill.

Kills are delivered by ``genreid.utils.faults.fault_point`` (``GENREID_KILL_AT=<point>:<n>``):
the process sends itself SIGKILL, exactly what an OOM killer or a power cut does.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from genreid.config.loader import dump_yaml, resolve_recipe, set_dotted

ROOT = Path(__file__).resolve().parents[1]
DS = "synthetic"


def _stage(workdir: Path, stage: str, *extra: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", GENREID_LOG="WARNING")
    env.pop("GENREID_KILL_AT", None)
    if kill_at:
        env["GENREID_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py"), "--dataset", DS, *extra],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=600)


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def _params(overrides: dict) -> str:
    tree = resolve_recipe(ROOT / "params" / "tiny.yaml")
    for key, value in overrides.items():
        set_dotted(tree, key, value)
    return dump_yaml(tree)


# Two epochs / several checkpoints so a kill can land after a checkpoint and the rerun resumes.
OVERRIDES = {"warmup.epochs": 2, "pretrain.epochs": 2, "pretrain.checkpoint_every_iters": 1,
             "train.epochs": 2, "train.checkpoint_every_iters": 1}


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Path:
    """An uninterrupted tiny run of prepare -> meshes -> warmup -> pretrain -> train(gcl_plus), built once
    per test session: under pytest-xdist the workers share it (a file lock; the tests only read it, but
    for the evaluate test's reference metrics, which no other test reads)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # xdist: the session's folder
    work = shared / "uninterrupted_chain"
    with FileLock(str(shared / "uninterrupted_chain.lock")):
        if not (work / "complete").is_file():
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            (work / "params.yaml").write_text(_params(OVERRIDES))
            for stage, extra in (("prepare", ()), ("meshes", ()), ("warmup", ()), ("pretrain", ()),
                                 ("train", ("--method", "gcl_plus"))):
                _ok(_stage(work, stage, *extra))
            (work / "complete").write_text("")
    return work


def _copy_inputs(chain: Path, dest: Path, keep: list[str]) -> None:
    shutil.copy(chain / "params.yaml", dest / "params.yaml")
    for rel in keep:
        src = chain / rel
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / rel)


def _state(path: Path) -> dict[str, torch.Tensor]:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    sd = blob.get("state_dict", blob)
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def _assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs between the uninterrupted and the resumed run"


CASES = [
    # stage, extra args, fault point, inputs to copy from the chain, final output checked
    ("warmup", (), "warmup.iter", ["data"], "models/synthetic/baseline/encoder.pt"),
    ("pretrain", (), "pretrain.iter", ["data", "models/synthetic/baseline/encoder.pt"],
     "models/synthetic/pretrain/generator.pt"),
    ("train", ("--method", "gcl_plus"), "train.iter",
     ["data", "models/synthetic/baseline/encoder.pt", "models/synthetic/pretrain/generator.pt"],
     "models/synthetic/gcl_plus/encoder.pt"),
]


@pytest.mark.slow
@pytest.mark.parametrize("stage, extra, point, inputs, output", CASES, ids=[c[0] for c in CASES])
def test_sigkill_then_rerun_equals_uninterrupted(chain, tmp_path, stage, extra, point, inputs, output):
    _copy_inputs(chain, tmp_path, inputs)
    nth = random.Random(f"{stage}-kill").randint(2, 3)  # seeded: after the first checkpoint, before the end
    killed = _stage(tmp_path, stage, *extra, kill_at=f"{point}:{nth}")
    assert killed.returncode == -signal.SIGKILL, f"stage was not killed at {point}:{nth}: {killed.stderr[-2000:]}"
    assert not (tmp_path / output).exists(), "a killed stage left its final output behind"
    assert not list(tmp_path.rglob(".*.tmp")), "a killed stage left a temporary file where it could be read"
    resumed = _stage(tmp_path, stage, *extra)
    _ok(resumed)
    _assert_same_weights(chain / output, tmp_path / output)


@pytest.mark.slow
def test_sigkill_during_generation_then_rerun_gives_identical_manifests(chain, tmp_path):
    shutil.copy(chain / "params.yaml", tmp_path / "params.yaml")
    killed = _stage(tmp_path, "prepare", kill_at="synth.image:40")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "data" / "prepared" / DS).exists()
    _ok(_stage(tmp_path, "prepare"))
    for split in ("train", "val", "query", "gallery"):
        name = f"data/prepared/{DS}/manifest_{split}.csv"
        assert (tmp_path / name).read_bytes() == (chain / name).read_bytes(), name


@pytest.mark.slow
def test_sigkill_of_evaluate_leaves_no_metrics_then_rerun_matches(chain, tmp_path):
    _copy_inputs(chain, tmp_path, ["data", "models/synthetic/gcl_plus/encoder.pt"])
    killed = _stage(tmp_path, "evaluate", "--method", "gcl_plus", kill_at="evaluate.write:1")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "results" / DS / "gcl_plus" / "metrics.json").exists()
    _ok(_stage(tmp_path, "evaluate", "--method", "gcl_plus"))
    _ok(_stage(chain, "evaluate", "--method", "gcl_plus"))
    ours, ref = (json.loads((w / "results" / DS / "gcl_plus" / "metrics.json").read_text()) for w in (tmp_path, chain))
    for key in ("mAP", "R1", "R5", "R10", "mINP"):
        assert ours[key] == ref[key], key

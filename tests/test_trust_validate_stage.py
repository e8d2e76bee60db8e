"""An unknown top-level key or an empty params.yaml fails the next `dvc repro` even
though no stage lists the key; a valid file gives a byte-stable output, so nothing reruns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genreid.config import resolve_recipe

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).parent / "dvc")


def _run(cmd, cwd, check=True):
    env = {**os.environ, "PYTHONPATH": str(cwd), "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git + DVC repository holding only the validate_params stage of the real dvc.yaml."""
    repo = tmp_path_factory.mktemp("validate") / "repo"
    repo.mkdir()
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["validate_params"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"validate_params": stage}}, sort_keys=False))
    shutil.copytree(ROOT / "genreid", repo / "genreid", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "stages").mkdir()
    shutil.copy(ROOT / "stages" / "validate_params.py", repo / "stages")
    (repo / "params.yaml").write_text(yaml.safe_dump(resolve_recipe(ROOT / "params" / "tiny.yaml"), sort_keys=False))
    (repo / "results").mkdir()
    for cmd in (["git", "init", "-q"], [DVC, "init", "-q"], [DVC, "config", "--local", "core.analytics", "false"],
                ["git", "add", "-A"], ["git", "commit", "-q", "-m", "init"]):
        _run(cmd, repo)
    return repo


def test_valid_params_run_once_and_then_nothing(repo):
    first = _run([DVC, "repro"], repo)
    assert "Running stage 'validate_params'" in first.stdout
    out = (repo / "results" / "params_check.json").read_bytes()
    second = _run([DVC, "repro"], repo)
    assert "Running stage" not in second.stdout
    assert (repo / "results" / "params_check.json").read_bytes() == out


@pytest.mark.parametrize("edit, fragment", [
    (lambda text: text + "seeed: 2\n", "seeed: unknown key"),
    (lambda text: "", "params.yaml is empty"),
    (lambda text: text.replace("seed: 1", "seed: .nan"), "seed: Input should be a valid integer"),
])
def test_an_edit_no_stage_tracks_still_fails_the_next_repro(repo, edit, fragment):
    params = repo / "params.yaml"
    good = params.read_text()
    if not (repo / "results" / "params_check.json").is_file():
        _run([DVC, "repro"], repo)
    before = (repo / "results" / "params_check.json").read_bytes()
    params.write_text(edit(good))
    bad = _run([DVC, "repro"], repo, check=False)
    assert bad.returncode != 0 and fragment in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
    params.write_text(good)
    again = _run([DVC, "repro"], repo)
    assert (repo / "results" / "params_check.json").read_bytes() == before, again.stdout

"""Provenance: the commit and whether the code or params that ran differ from it."""

import subprocess

from genreid.utils.provenance import git_commit


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_dirty_ignores_pipeline_outputs_but_not_code_or_params(tmp_path):
    _git(tmp_path, "init", "-q")
    for name in ("params.yaml", "dvc.lock", "results/metrics.json", "genreid.py"):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("a\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (tmp_path / "results" / "metrics.json").write_text("b\n")
    (tmp_path / "dvc.lock").write_text("b\n")
    (tmp_path / "untracked.txt").write_text("b\n")
    assert git_commit(str(tmp_path)) == {"commit": sha, "dirty": False, "dirty_files": []}
    (tmp_path / "params.yaml").write_text("seed: 2\n")
    assert git_commit(str(tmp_path)) == {"commit": sha, "dirty": True, "dirty_files": ["params.yaml"]}


def test_outside_a_repository_says_unknown(tmp_path):
    assert git_commit(str(tmp_path)) == {"commit": None, "dirty": None, "dirty_files": []}

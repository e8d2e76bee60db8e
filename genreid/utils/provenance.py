"""What every metrics file records: seed, versions, device, git commit, time."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from importlib import metadata
from typing import Any

from genreid.utils.isa import cpu_description

_PACKAGES = ("torch", "torchvision", "easypytorch3d", "faiss-cpu", "faiss-gpu", "dvc", "numpy",
             "scikit-learn", "smplx", "genreid")


def package_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


# Pipeline outputs committed to git: a run rewriting them does not make the code it ran "dirty".
OUTPUT_PATHS = ("results", "dvc.lock")


def git_commit(cwd: str | None = None) -> dict[str, Any]:
    """The commit and whether tracked files other than pipeline outputs differ from it (``dirty``,
    ``dirty_files``: e.g. params.yaml edited by ``dvc exp run -S``; its values are in config.resolved.yaml)."""
    excludes = [f":(exclude){p}" for p in OUTPUT_PATHS]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=cwd,
                             check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excludes],
                                capture_output=True, text=True, cwd=cwd, check=True, timeout=10).stdout
        changed = sorted(line[3:] for line in status.splitlines() if line.strip())
        return {"commit": sha, "dirty": bool(changed), "dirty_files": changed[:20]}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "dirty_files": []}


def device_description(device: Any = None) -> str:
    import torch

    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def run_record(seed: int, device: Any = None, **extra: Any) -> dict[str, Any]:
    """A provenance block for metrics files. Time is recorded under ``finished_at`` and is the
    only field that differs between two identical runs; comparisons of determinism drop it."""
    rec: dict[str, Any] = {
        "seed": seed,
        "versions": package_versions(),
        "python": platform.python_version(),
        "device": device_description(device),
        "cpu": cpu_description(),
        "git": git_commit(),
    }
    rec.update(extra)
    return rec


def timestamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

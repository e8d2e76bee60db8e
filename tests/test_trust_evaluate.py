"""``genreid evaluate``: string pids and a missing GPU are user errors with a
message and exit code 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from genreid.cli import main


def _save(path, query_pids=(1, 2, 3), gallery_pids=(1, 2, 3, 4)):
    rng = np.random.default_rng(0)
    np.savez(path, distmat=rng.random((3, 4)), query_pids=np.array(query_pids),
             gallery_pids=np.array(gallery_pids), query_camids=np.zeros(3, int), gallery_camids=np.ones(4, int))
    return path


@pytest.mark.parametrize("pids, shown", [(("a", "b", "c"), "'a'"), ((1.5, 2.0, 3.0), "1.5")])
def test_non_integer_pids_are_named(tmp_path, capsys, pids, shown):
    path = _save(tmp_path / "ev.npz", query_pids=pids)
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: query_pids must hold integers" in err and shown in err and "int64" in err


def test_integer_like_pids_are_accepted(tmp_path, capsys):
    path = _save(tmp_path / "ev.npz", query_pids=np.array(["1", "2", "3"]), gallery_pids=(1.0, 2.0, 3.0, 4.0))
    assert main(["evaluate", str(path)]) == 0
    assert "mAP" in json.loads(capsys.readouterr().out)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_message(tmp_path):
    path = _save(tmp_path / "ev.npz")
    proc = subprocess.run([sys.executable, "-m", "genreid.cli", "evaluate", str(path), "--device", "cuda"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--device cuda asked for a GPU but CUDA is not available" in proc.stderr and "--device cpu" in proc.stderr


def test_unknown_device_is_a_message(tmp_path, capsys):
    assert main(["evaluate", str(_save(tmp_path / "ev.npz")), "--device", "banana"]) == 2
    assert "--device 'banana' is not a torch device" in capsys.readouterr().err

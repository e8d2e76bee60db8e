"""The library example of docs/usage.md ("Library use") runs as written on small random data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "usage.md"


def test_library_use_example_runs(capsys):
    section = GUIDE.read_text().split("## Library use", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    rng = np.random.default_rng(0)
    train = rng.normal(size=(60, 16)).astype(np.float32)
    scope = {
        "q": rng.normal(size=(10, 16)).astype(np.float32), "g": rng.normal(size=(30, 16)).astype(np.float32),
        "q_pids": np.arange(10), "g_pids": np.arange(30) % 10,
        "q_camids": np.zeros(10, dtype=np.int64), "g_camids": np.ones(30, dtype=np.int64),
        "train_features": train / np.linalg.norm(train, axis=1, keepdims=True),
    }
    exec(compile(code, str(GUIDE), "exec"), scope)  # noqa: S102 - the repository's own documentation
    assert 0.0 < scope["ev"].result.mAP <= 1.0
    assert scope["res"].protocol == "sklearn"
    assert scope["labels"].shape == (60,) and scope["dist"].shape == (60, 60)
    assert capsys.readouterr().out.strip()

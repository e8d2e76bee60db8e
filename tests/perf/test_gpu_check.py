"""scripts/gpu_check.sh --dry: the GPU check's CPU mode runs every part and writes JSON + markdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry", "--out", str(tmp_path),
                           "--iters", "1", "--warmup", "1", "--stages", "warmup", "gcl_plus"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["profile"] == "dry" and result["environment"]["device"] == "cpu"
    rows = result["stages"]
    assert {(r["stage"], r["amp"], r["deterministic"]) for r in rows} == {
        (s, a, d) for s in ("warmup", "gcl_plus") for a, d in (("off", True), ("bf16", True), ("bf16", False))}
    for r in rows:
        assert "error" not in r and r["finite"] and r["images_per_s"] > 0 and r["peak_rss_mib"] > 0
    jaccard = [r for r in result["other"] if r["what"] == "jaccard_distance"]
    assert jaccard and all(r.get("finite") for r in jaccard)
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| warmup | bf16 | off | deterministic |" in table and "jaccard_distance" in table

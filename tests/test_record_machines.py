"""scripts/record_machines.py: a machine is added only to the archived record of the same settings, seed
and exact metrics as the evaluation folder it comes from."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from genreid.report.seeds import archive_run

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("record_machines", ROOT / "scripts" / "record_machines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_the_matching_record_gets_the_machine(tmp_path):
    archive = tmp_path / "seeds"
    same = archive_run(archive, "synthetic", "gcl", 2, {"mAP": 40.5, "R1": 50.0}, "fpA")
    other_settings = archive_run(archive, "synthetic", "gcl", 2, {"mAP": 40.5, "R1": 50.0}, "fpB")
    other_metrics = archive_run(archive, "synthetic", "baseline", 2, {"mAP": 30.0, "R1": 40.0}, "fpA")
    run = tmp_path / "run"
    cpu = {"model": "AMD EPYC", "isa": ["avx2", "avx512f"], "cap": "off"}
    for method, map_ in (("gcl", 40.5), ("baseline", 30.1)):
        folder = run / "synthetic" / method
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"mAP": map_, "R1": 50.0 if method == "gcl" else 40.0}))
        (folder / "provenance.json").write_text(json.dumps({"seed": 2, "provenance": {"seed": 2, "cpu": cpu}}))
    (run / "collected").mkdir()
    (run / "collected" / "synthetic.json").write_text(json.dumps({"fingerprint": "fpA"}))
    lines = _script().record_from(run, archive, dry_run=False)
    assert len(lines) == 1 and "gcl/fpA/seed_2.json" in lines[0]
    assert json.loads(same.read_text())["machine"] == cpu
    assert "machine" not in json.loads(other_settings.read_text())
    assert "machine" not in json.loads(other_metrics.read_text())  # 30.0 archived, 30.1 in the folder
    assert _script().record_from(run, archive, dry_run=False) == []  # a recorded machine is never replaced

"""The paper-shape smoke's pieces (the full run is `make smoke-paper`): its recipe keeps every shape,
width and batch size of params/market1501.yaml and changes only the schedule and the listed keys;
its fake assets load through the real loaders; the python shim records and bounds a process."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from genreid.body.model_files import read_smpl_file
from genreid.config import resolve_recipe
from genreid.meshes.hmr import build_hmr
from genreid.perf.smoke import (
    MEMORY_TOOLS,
    SCHEDULE,
    Assets,
    copy_repo,
    recipe_datasets,
    smoke_recipe,
    stage_label,
    write_shim,
)

ROOT = Path(__file__).resolve().parents[2]


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


UDA_RECIPES = sorted(p.relative_to(ROOT / "params").as_posix() for p in (ROOT / "params" / "uda").glob("*.yaml")
                     if not p.name.startswith(("synthetic", "tiny")))


@pytest.mark.parametrize("recipe", ["market1501.yaml", *UDA_RECIPES])
def test_smoke_recipe_changes_only_the_schedule_and_listed_keys(tmp_path, recipe):
    shutil.copytree(ROOT / "params", tmp_path / "params")
    a = Assets({}, *(tmp_path / n for n in ("torch", "hmr.pt", "mean.npz", "body.npz")))
    (tmp_path / "params" / "smoke.yaml").write_text(yaml.safe_dump(smoke_recipe(a, recipe)))
    paper = _flatten(resolve_recipe(tmp_path / "params" / recipe))
    smoke = _flatten(resolve_recipe(tmp_path / "params" / "smoke.yaml"))
    changed = {k for k in paper if paper[k] != smoke[k]}
    allowed = {f"{s}.{k}" for s, keys in [*SCHEDULE.items(), *MEMORY_TOOLS.items()] for k in keys}
    allowed |= {"runtime.device", "data.expected_counts", "mesh.hmr_checkpoint", "mesh.smpl_mean_params",
                "mesh.body_model"}
    assert changed <= allowed, changed - allowed
    for key in ("warmup.batch_size", "warmup.bn_group_size", "pretrain.batch_size", "train.batch_size",
                "data.height", "data.width", "model.backbone", "model.generator.dec_channels", "model.stripes"):
        assert smoke[key] == paper[key], key
    assert (smoke["warmup.batch_size"], smoke["train.batch_size"], smoke["data.height"]) == (256, 16, 256)
    assert smoke["source.batch_size"] == paper["source.batch_size"] == 64


def test_uda_recipes_need_their_source_archive_too():
    assert len(UDA_RECIPES) == 4
    for recipe in UDA_RECIPES:
        source, target = Path(recipe).stem.split("_to_")
        assert recipe_datasets(ROOT / "params" / recipe) == [target, source]
    assert recipe_datasets(ROOT / "params" / "market1501.yaml") == ["market1501"]


@pytest.mark.parametrize("recipe", UDA_RECIPES)
def test_smoke_uda_recipe_applies_and_validates(tmp_path, recipe):
    """What `make smoke-paper RECIPE=<uda recipe>` does before `dvc repro`: the recipe applies and validates
    (no refusal) and the derived lists run the source stage and the target's warm-up from it."""
    import sys

    copy_repo(ROOT, tmp_path)  # what the smoke copies (tracked files, no dvc.lock or results)
    a = Assets({}, *(tmp_path / n for n in ("torch", "hmr.pt", "mean.npz", "body.npz")))
    (tmp_path / "params" / "smoke_paper.yaml").write_text(
        yaml.safe_dump(smoke_recipe(a, recipe)))
    proc = subprocess.run([sys.executable, "-m", "genreid.cli", "recipe", "apply", "params/smoke_paper.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path),
                                                                            "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    source, target = Path(recipe).stem.split("_to_")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["datasets"] == [target] and params["warmup"]["source_dataset"] == source
    assert params["uda"]["sources"] == [source] and params["uda"]["targets"] == {target: source}, params["uda"]
    validated = subprocess.run([sys.executable, "stages/validate_params.py"], cwd=tmp_path, capture_output=True,
                               text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert validated.returncode == 0 and "valid" in validated.stdout, validated.stdout + validated.stderr
    assert (params["source"]["epochs"], params["source"]["batch_size"]) == (1, 64)


def test_smoke_assets_load(tmp_path):
    from genreid.perf.smoke import write_assets

    a = write_assets(tmp_path, train_ids=2, test_ids=2, size=(32, 16), datasets=("market1501", "dukemtmc",
                                                                                    "msmt17"))
    assert [p.name for p in a.archives.values()] == ["Market-1501-v15.09.15.zip", "DukeMTMC-reID.zip",
                                                    "MSMT17_V1.tar.gz"]
    assert all(p.stat().st_size > 0 for p in a.archives.values()) and (a.torch_home / "hub" / "checkpoints").is_dir()
    build_hmr(a.hmr_checkpoint, a.smpl_mean_params)
    assert read_smpl_file(a.body_model)["J_regressor"].shape[0] == 24


def test_shim_records_peak_memory_and_kills_over_the_limit(tmp_path):
    log = tmp_path / "log.jsonl"
    shim = write_shim(tmp_path / "bin", log, limit_gb=0.25)
    ok = subprocess.run([str(shim), "-c", "print('hi')"], capture_output=True, text=True)
    hog = subprocess.run([str(shim), "-c", "import time; b = bytearray(600 * 2**20); time.sleep(5)"])
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert ok.returncode == 0 and "hi" in ok.stdout and rows[0]["rc"] == 0 and rows[0]["peak_mib"] > 0
    assert hog.returncode == 137 and rows[1]["killed_over_limit"]


FORKED = """
import os, time
b = bytearray({mib} * 2**20)  # written (zeroed), so resident; forked children share it copy-on-write
child = os.fork()
time.sleep(3)
if child == 0:
    os._exit(0)
os.waitpid(child, 0)
"""


def test_shim_counts_pages_a_forked_worker_shares_once(tmp_path):
    """A stage and a DataLoader worker forked from it share the stage's pages: their summed RSS would be
    twice the memory in use (a false over-limit at paper shapes with num_workers: 4); summed PSS is not."""
    log = tmp_path / "log.jsonl"
    shim = write_shim(tmp_path / "bin", log, limit_gb=0.6)
    proc = subprocess.run([str(shim), "-c", FORKED.format(mib=400)])
    row = json.loads(log.read_text().splitlines()[0])
    assert proc.returncode == 0 and not row["killed_over_limit"], row  # RSS summed: about 2 x 400 MiB > 0.6 GB
    assert 400 <= row["peak_mib"] < 600, row
    assert stage_label(["stages/train.py", "--dataset", "market1501", "--method", "gcl"]) == "train market1501 gcl"


def test_smoke_script_names_a_missing_recipe(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("smoke_paper_script", ROOT / "scripts" / "smoke_paper.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exc:
        script.main(["--recipe", "uda/nowhere_to_market1501.yaml"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "--recipe uda/nowhere_to_market1501.yaml: no such file under" in err
    assert "uda/dukemtmc_to_market1501.yaml" in err  # the fix: an existing recipe


def test_time_bound_fails_a_run_unless_advisory():
    from genreid.perf.smoke import check_time, markdown

    over = {"time_limit_min": 20.0, "total_seconds": 1250.0, "limit_gb": 12.0, "problems": []}
    check_time(over, advisory=False)
    assert over["problems"] == ["took 1250 s, over 20.0 min"]
    advisory = {"time_limit_min": 20.0, "total_seconds": 1250.0, "limit_gb": 12.0, "problems": []}
    check_time(advisory, advisory=True)
    assert advisory["problems"] == [] and advisory["notes"][0].startswith("took 1250 s, over 20.0 min")
    text = markdown(advisory)
    assert "PASS" in text and "note: took 1250 s" in text
    within = {"time_limit_min": 20.0, "total_seconds": 1199.0, "limit_gb": 12.0, "problems": []}
    check_time(within, advisory=False)
    assert within["problems"] == [] and "notes" not in within

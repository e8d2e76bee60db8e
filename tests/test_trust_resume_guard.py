"""The resume guard never destroys work it should keep, and always resets work
that was computed from something else (params the stage reads, its code, its inputs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genreid.config import resolve_recipe
from genreid.config.loader import read_yaml
from genreid.errors import ConfigError, GenreidError
from genreid.pipeline.dvc_stages import load_stages, stage_for_folder
from genreid.pipeline.resume_guard import MODULE, guard

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(tmp_path):
    """A tiny-recipe params file, a warm-up and a pretrain checkpoint folder with work in them."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(resolve_recipe(ROOT / "params" / "tiny.yaml"), sort_keys=False))
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    (meshes / "train_render_0.npy").write_bytes(b"render v1")
    folders = {}
    for name in ("warmup", "pretrain"):
        ckpt = tmp_path / name / "ckpt"
        ckpt.mkdir(parents=True)
        folders[name] = ckpt
    state = {"params": params, "meshes": meshes, "folders": folders, "tmp": tmp_path}

    def guard_stage(name, **kw):
        stage = {"warmup": "warmup@synthetic", "pretrain": "pretrain@synthetic"}[name]
        inputs = [meshes] if name == "pretrain" else []
        return guard([folders[name]], inputs, params, stage=stage, dvc_yaml=ROOT / "dvc.yaml", hash_cache=None, **kw)

    for name in folders:  # first run writes the signature, then a checkpoint appears
        guard_stage(name)
        (folders[name] / "ckpt_000000003.pt").write_bytes(b"three days of GPU time")
    state["guard"] = guard_stage
    return state


def _edit(params: Path, dotted: str, value) -> None:
    tree = read_yaml(params.read_text())
    node = tree
    *head, last = dotted.split(".")
    for k in head:
        node = node[k]
    node[last] = value
    params.write_text(yaml.safe_dump(tree, sort_keys=False))


def _work_left(folder: Path) -> bool:
    return (folder / "ckpt_000000003.pt").is_file()


def test_rerun_after_a_kill_resumes(run):
    assert run["guard"]("warmup") and _work_left(run["folders"]["warmup"])


def test_a_param_the_stage_does_not_read_never_resets_it(run):
    _edit(run["params"], "train.epochs", 7)
    _edit(run["params"], "eval.rerank.enabled", True)
    _edit(run["params"], "runtime.num_workers", 2)
    assert run["guard"]("warmup") and _work_left(run["folders"]["warmup"])
    assert run["guard"]("pretrain") and _work_left(run["folders"]["pretrain"])


def test_a_param_the_stage_reads_resets_it(run):
    _edit(run["params"], "warmup.lr", 0.5)
    assert not run["guard"]("warmup") and not _work_left(run["folders"]["warmup"])
    assert run["guard"]("pretrain") and _work_left(run["folders"]["pretrain"])  # pretrain does not list warmup


@pytest.mark.parametrize("dotted, value", [("warmup.lr", -1), ("seeed", 2), ("warmup.epochs", True)])
def test_invalid_params_leave_every_checkpoint_in_place(run, dotted, value):
    _edit(run["params"], dotted, value)
    with pytest.raises(ConfigError):
        run["guard"]("warmup")
    assert _work_left(run["folders"]["warmup"])


def test_invalid_params_on_the_command_line_exit_2_and_remove_nothing(run):
    _edit(run["params"], "warmup.lr", -1)
    folder = run["folders"]["warmup"]
    proc = subprocess.run([sys.executable, "-m", MODULE, str(folder), "--params", str(run["params"]),
                           "--stage", "warmup@synthetic"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "warmup.lr" in proc.stderr and "nothing was removed" in proc.stderr
    assert "Traceback" not in proc.stderr and _work_left(folder)


def test_rerendered_meshes_reset_pretrain(run):
    (run["meshes"] / "train_render_0.npy").write_bytes(b"render v2")  # same name, new content
    assert not run["guard"]("pretrain") and not _work_left(run["folders"]["pretrain"])
    assert run["guard"]("warmup")  # the warm-up does not read the renders


def test_folder_inputs_are_fingerprinted_by_content_not_timestamps(run):
    render = run["meshes"] / "train_render_0.npy"
    render.write_bytes(render.read_bytes())  # rewritten, same bytes (a re-rendered identical set)
    assert run["guard"]("pretrain") and _work_left(run["folders"]["pretrain"])


def test_pretrain_and_train_guard_the_meshes_folder():
    params = read_yaml((ROOT / "params.yaml").read_text())
    stages = load_stages(ROOT / "dvc.yaml", params)
    root = params["data"]["root"]
    for ds in params["datasets"]:
        names = [f"pretrain@{ds}", *(f"train@{ds}-{m}" for m in params["train"]["methods"])]
        for name in names:
            line = next(c for c in stages[name].cmd if MODULE in c)
            inputs = line.split("--inputs", 1)[1].split()
            assert f"{root}/meshes/{ds}" in inputs, name


def test_the_guard_finds_its_own_stage_in_dvc_yaml():
    params = read_yaml((ROOT / "params.yaml").read_text())
    stages = load_stages(ROOT / "dvc.yaml", params)
    ds = params["datasets"][0]
    assert stage_for_folder(stages, f"models/{ds}/baseline/ckpt", MODULE).name == f"warmup@{ds}"
    method = params["train"]["methods"][-1]
    assert stage_for_folder(stages, f"models/{ds}/{method}/ckpt", MODULE).name == f"train@{ds}-{method}"
    with pytest.raises(GenreidError, match="pass --stage"):
        stage_for_folder(stages, "models/elsewhere/ckpt", MODULE)


def test_code_the_stage_depends_on_resets_it(tmp_path, monkeypatch):
    """A self-contained pipeline: editing the stage's code resets; editing other code does not."""
    monkeypatch.chdir(tmp_path)
    for rel in ("stages/a.py", "genreid/x/mod.py", "genreid/y/other.py"):
        Path(rel).parent.mkdir(parents=True, exist_ok=True)
        Path(rel).write_text("print('v1')\n")
    Path("params.yaml").write_text("seed: 1\n")
    Path("dvc.yaml").write_text(
        "stages:\n  a:\n    cmd:\n      - python -m genreid.pipeline.resume_guard ckpt\n      - python stages/a.py\n"
        "    deps: [stages/a.py, genreid/x, data/in]\n    params: [seed, runtime]\n")
    ckpt = Path("ckpt")
    ckpt.mkdir()
    assert not guard([ckpt], [], hash_cache=None)
    (ckpt / "ckpt_1.pt").write_bytes(b"work")
    Path("genreid/y/other.py").write_text("print('v2')\n")
    assert guard([ckpt], [], hash_cache=None) and (ckpt / "ckpt_1.pt").exists()
    Path("genreid/x/mod.py").write_text("print('v2')\n")
    assert not guard([ckpt], [], hash_cache=None) and not (ckpt / "ckpt_1.pt").exists()

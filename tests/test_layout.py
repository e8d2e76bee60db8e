"""The file layout: the stage scripts read every path from ``genreid.layout``, and ``dvc.yaml`` spells
the same paths for DVC (the layout filled with DVC's placeholders gives dvc.yaml's entries)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from genreid.layout import BASELINE_RUN, layout
from genreid.registry import PRETRAIN_RUN

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _paths(stage: str) -> set[str]:
    body = STAGES[stage].get("do", STAGES[stage])
    return {p if isinstance(p, str) else next(iter(p)) for p in body.get("deps", []) + body.get("outs", [])}


@pytest.mark.parametrize(("stage", "item", "run"), [("warmup", "${item}", BASELINE_RUN),
                                                     ("pretrain", "${item}", PRETRAIN_RUN),
                                                     ("train", "${item.dataset}", "${item.method}")])
def test_dvc_yaml_spells_the_layout(stage, item, run):
    files = layout("${data.root}", item)
    expected = {files.prepared, files.model_dir(run) / "ckpt", files.train_log(run)}
    expected |= {files.generator} if run == PRETRAIN_RUN else {files.encoder(run)}
    if stage != "warmup":
        expected |= {files.meshes, files.encoder(BASELINE_RUN)}
    if stage == "train":
        expected.add(files.generator)
    assert {p.as_posix() for p in expected} <= _paths(stage)


def test_evaluate_reads_the_encoder_the_trainer_writes():
    files = layout("${data.root}", "${item.dataset}")
    assert {files.prepared.as_posix(), files.encoder("${item.method}").as_posix(),
            (files.results_dir("${item.method}") / "config.resolved.yaml").as_posix()} <= _paths("evaluate")


def test_stage_scripts_build_no_paths_of_their_own():
    """No ``Path(...) / ...`` arithmetic or "models/"/"results/" strings in stages/*.py: the layout owns them
    (a path given on the command line, such as --encoder or --out, is only wrapped in Path)."""
    for script in sorted((ROOT / "stages").glob("*.py")):
        tree = ast.parse(script.read_text())
        docstring = tree.body[0].value
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                left = node.left
                built = isinstance(left, ast.Call) and getattr(left.func, "id", "") == "Path"
                assert not built, f"{script.name}:{node.lineno} builds a path; add it to genreid/layout.py"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node is not docstring:
                assert not node.value.startswith(("models/", "results/", "data/")), (script.name, node.value)

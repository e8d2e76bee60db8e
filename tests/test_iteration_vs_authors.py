"""benchmarks/iteration_vs_authors.py's comparison and report, without the authors' code: genreid against
itself must report exact zeros and pass; one perturbed weight must be named where it is, fail the run,
and move the gradients and steps downstream of it. The renaming that carries the authors' records and
optimiser states across is checked on their key names (tests/fixtures/authors_state_dicts.json)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "authors_state_dicts.json").read_text())
SMALL = ["--self-check", "--height", "64", "--width", "32", "--slots", "48", "--negatives", "8", "--batch", "4"]


def _load_script():
    script = ROOT / "benchmarks" / "iteration_vs_authors.py"
    spec = importlib.util.spec_from_file_location("iteration_vs_authors", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


ivsa = _load_script()


def _rows(path: Path) -> dict[tuple[str, str], dict]:
    return {(r["stage"], r["quantity"]): r for r in json.loads(path.read_text())["rows"]}


@pytest.fixture(scope="module")
def unperturbed(tmp_path_factory) -> tuple[int, dict]:
    out = tmp_path_factory.mktemp("ivsa") / "same.json"
    rc = ivsa.main([*SMALL, "--json", str(out)])
    return rc, _rows(out)


def test_genreid_against_itself_reports_zeros_and_passes(unperturbed):
    rc, rows = unperturbed
    assert rc == 0
    for stage in ("pretrain", "gcl"):
        for g in ("E_str", "G", "D"):
            assert rows[(stage, f"gradient {g}")]["ref"] > 0  # something was compared
            assert rows[(stage, f"step {g}")]["ref"] > 0
    assert rows[("gcl", "step E_id")]["ref"] > 0
    assert rows[("gcl", "memory update (after - before)")]["ref"] > 0
    assert rows[("gcl", "VI loss (sum)")]["ref"] > 0
    for row in rows.values():
        assert row["ok"] and row["abs_diff"] == 0.0 and row["rel_diff"] == 0.0
        assert row["max_elem"] in (None, 0.0)


def test_the_default_dtype_and_tensor_float_are_restored(unperturbed):
    assert torch.get_default_dtype() == torch.float32
    assert torch.ones(1, dtype=torch.float64).float().dtype == torch.float32


def test_a_perturbed_weight_is_named_and_fails_the_run(tmp_path):
    out = tmp_path / "perturbed.json"
    rc = ivsa.main([*SMALL, "--stages", "pretrain", "--perturb", "G/up.4.conv.weight=1e-3", "--json", str(out)])
    rows = _rows(out)
    assert rc == 1
    moved = rows[("pretrain", "weights before G")]
    assert not moved["ok"] and moved["worst"] == "up.4.conv.weight"
    assert moved["max_elem"] == pytest.approx(1e-3, rel=1e-9)
    for g in ("E_id", "E_str", "D"):
        assert rows[("pretrain", f"weights before {g}")]["max_elem"] == 0.0
    assert not rows[("pretrain", "L1(x_rec, x)")]["ok"]
    assert not rows[("pretrain", "gradient G")]["ok"] and not rows[("pretrain", "step G")]["ok"]
    assert rows[("pretrain", "step E_id")]["max_elem"] == 0.0  # frozen in stage 2 on both sides


def test_tensor_rows_name_the_largest_difference_and_flag_absent_tensors():
    f64 = torch.float64
    ref = {"a": torch.tensor([1.0, 2.0], dtype=f64), "b": torch.tensor([4.0], dtype=f64)}
    other = {"a": torch.tensor([1.0, 2.0], dtype=f64), "b": torch.tensor([4.0 + 4e-6], dtype=f64)}
    row = ivsa.tensor_row("s", "q", ref, other, rtol=1e-7)
    assert row.worst == "b" and row.max_elem == pytest.approx(4e-6) and row.rel_elem == pytest.approx(1e-6)
    assert not row.ok
    assert ivsa.tensor_row("s", "q", ref, other, rtol=1e-5).ok
    missing = ivsa.tensor_row("s", "q", ref, {"a": ref["a"]}, rtol=1.0)
    assert not missing.ok and missing.worst == "b" and "one side only" in missing.note
    assert not ivsa.scalar_row("s", "q", 1.0, None, rtol=1.0).ok
    assert ivsa.scalar_row("s", "q", 0.0, 0.0, rtol=0.0).ok


def test_the_authors_names_map_onto_every_genreid_group_and_back():
    placeholder = {k: torch.empty(0) for k in FIXTURE["ft_net"]}
    gen = {k: torch.empty(0) for k in FIXTURE["AdaINGen"]}
    dis = {k: torch.empty(0) for k in FIXTURE["MsImageDis"]}
    names = ivsa.authors_name_map(placeholder, gen, dis)
    assert names["E_id"]["conv1.weight"] == "stem.0.weight"
    assert names["E_str"]["enc_content.model.0.conv.weight"] == "stem.0.conv.weight"
    assert names["G"]["mlp_w1.model.0.fc.weight"] == "mlp_scale.0.0.weight"
    assert names["D"]["cnns.0.0.conv.weight"] == "nets.0.0.conv.weight"
    assert all(k.startswith("enc_content.") for k in names["E_str"])
    states = {g: {v: {"exp_avg": torch.zeros(1)} for v in m.values()} for g, m in names.items()}
    back = ivsa.to_authors_names(states, names)
    assert {g: set(v) for g, v in back.items()} == {g: set(m) for g, m in names.items()}


def test_scripted_draws_name_a_self_positive_the_recipe_excludes():
    inputs = ivsa.make_inputs(ivsa.Shapes(batch=2, height=8, width=4, slots=24, clusters=3, outliers=2,
                                          negatives=4, embedding_dim=4), seed=0)
    assert inputs["term2_positive"][0] == inputs["idx"][0]  # anchor 0 is its own positive
    memory = torch.nn.Module()
    assert ivsa.scripted_draws(memory, inputs, include_self=True) == []
    assert torch.equal(memory.sample_positives(inputs["idx"], None, include_self=True), inputs["term2_positive"])
    assert torch.equal(memory.sample_positives(inputs["idx"], None, include_self=True), inputs["term3_positive"])
    assert torch.equal(memory.sample_negatives(inputs["idx"], 4), inputs["negatives"])
    breaks = ivsa.scripted_draws(memory, inputs, include_self=False)
    assert breaks and "anchor 0 is its own term2 positive" in breaks[0]
    assert "positive_includes_self" in breaks[0]

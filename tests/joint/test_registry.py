"""The method registry: every registered arm is accepted wherever a method name is read, and a new arm
registered through the registry alone trains and reports without any other edit."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from genreid.config.schema import RuntimeConfig
from genreid.config.sections.evaluation import EvalConfig
from genreid.config.sections.gan import TrainConfig
from genreid.engine.context import RunContext
from genreid.joint.contrastive import ContrastiveMethod
from genreid.joint.generative import GenerativeMethod
from genreid.joint.run import JointInputs, train_joint
from genreid.models.id_encoder import load_encoder
from genreid.registry import (
    REFERENCE_RUNS,
    evaluated_names,
    label,
    method_names,
    method_spec,
    register_method,
    report_order,
    stage3_methods,
    unregister_method,
)

ROOT = Path(__file__).resolve().parents[2]
DUMMY = "dummy_flip"


def test_the_registry_holds_the_five_arms_in_report_order():
    assert method_names() == ("control_none", "control_aug", "oracle_views", "gcl", "gcl_plus")
    assert report_order() == ("untrained", "direct", "baseline") + method_names()
    assert [label(m) for m in report_order()] == ["untrained", "direct transfer", "baseline", "control_none",
                                                  "control_aug", "oracle_views", "GCL", "GCL+"]
    assert set(evaluated_names()) == set(report_order()) | {"source"}


@pytest.mark.parametrize("spec", stage3_methods(), ids=lambda s: s.name)
def test_every_arm_is_consistent_with_its_class_and_its_config(spec):
    assert spec.cls.name == spec.name and method_spec(spec.name) is spec
    assert issubclass(spec.cls, GenerativeMethod) == spec.needs_generator
    assert issubclass(spec.cls, ContrastiveMethod)
    assert spec.config_key is None or spec.config_key in TrainConfig.model_fields
    assert TrainConfig(methods=[spec.name]).methods == [spec.name]
    assert EvalConfig(methods=[spec.name]).methods == [spec.name]


def test_each_method_is_defined_once_and_listed_nowhere_else():
    """A method is registered in its own module and nowhere else; no other module of genreid/ or stages/
    spells out a list of methods (a literal list or tuple holding three or more of the names), so adding an
    arm needs no other edit. Naming one or two methods (a default, a claim about a pair) is a use."""
    names = set(method_names())
    sources = {p: p.read_text() for d in ("genreid", "stages") for p in (ROOT / d).rglob("*.py")}
    for name in names:
        registering = [str(p.relative_to(ROOT)) for p, text in sources.items()
                       if re.search(rf"""@register_method\(["']{name}["']""", text)]
        assert registering == [f"genreid/joint/arms/{name}.py"], (name, registering)
    for path, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                listed = {e.value for e in node.elts if isinstance(e, ast.Constant)} & names
                assert len(listed) < 3, f"{path.relative_to(ROOT)}:{node.lineno} lists methods {sorted(listed)}"


def test_unknown_names_are_clear_errors():
    from genreid.errors import ConfigError

    with pytest.raises(ConfigError, match="not a stage-3 method"):
        method_spec("simclr")
    with pytest.raises(ValueError, match="'simclr' is not a stage-3 method; use one of control_none"):
        TrainConfig(methods=["simclr"])
    with pytest.raises(ValueError, match="registered twice"):
        register_method("gcl", label="again", order=0, needs_generator=True)(type("Again", (GenerativeMethod,), {}))


@pytest.fixture
def dummy_arm():
    """An arm defined and registered here only: its positive view is the mirrored image."""

    @register_method(DUMMY, label="mirror view", order=50, needs_generator=False)
    class MirrorView(ContrastiveMethod):
        def positive_view(self, x: torch.Tensor) -> torch.Tensor | None:
            return x.flip(3)

    yield MirrorView
    unregister_method(DUMMY)


def test_an_arm_registered_alone_is_accepted_trained_and_reported(dummy_arm, joint_cfg, gan_toy, tmp_path):
    from genreid.perf.profile import STAGES
    from genreid.report import claims
    from genreid.report.collect import training_runs
    from stages.train import main as train_main  # noqa: F401 - the stage module imports cleanly

    assert method_names()[-1] == DUMMY and DUMMY not in REFERENCE_RUNS
    cfg = joint_cfg(methods=[DUMMY])
    assert cfg.methods == [DUMMY] and EvalConfig(methods=["baseline", DUMMY]).methods == ["baseline", DUMMY]
    inputs = JointInputs(encoder=gan_toy["encoder"], generator=tmp_path / "missing_generator.pt",
                         renders=tmp_path / "no_renders")
    ctx = RunContext(seed=1, height=gan_toy["height"], width=gan_toy["width"], model_dir=tmp_path / "models",
                     results_dir=tmp_path / "results", runtime=RuntimeConfig(device="cpu"))
    summary = train_joint(gan_toy["df"], gan_toy["val_df"], inputs, cfg, DUMMY, ctx)
    assert not (tmp_path / "missing_generator.pt").exists()
    enc, extra = load_encoder(tmp_path / "models" / "encoder.pt")
    assert extra["method"] == DUMMY and [h["epoch"] for h in summary["history"]] == [-1, 0, 1]
    assert "vi_self" in summary["history"][1]  # the loss saw the mirror view as the positive
    start = load_encoder(gan_toy["encoder"])[0].state_dict()
    assert any(not torch.equal(start[k], v) for k, v in enc.state_dict().items())
    assert (DUMMY, "baseline") in claims.comparison_pairs() and label(DUMMY) == "mirror view"
    assert claims.method_rank("gcl_plus") < claims.method_rank(DUMMY) < claims.method_rank("not_a_method")
    assert DUMMY in training_runs() and DUMMY not in STAGES  # no generator: nothing for the profiler

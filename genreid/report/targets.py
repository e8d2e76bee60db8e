"""The paper targets registry (``targets.yaml``): load, validate, look up.

Every published number carries its provenance and a ``checked`` flag; only checked numbers
are PASS/FAIL targets, so an unverified aggregator value can never fail (or pass) a run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from genreid.config.base import StrictModel
from genreid.errors import ConfigError

METRICS: tuple[str, ...] = ("mAP", "R1", "R5", "R10")
REAL_DATASETS: tuple[str, ...] = ("market1501", "dukemtmc", "msmt17")
UNSUPERVISED = "unsupervised"
_SETTING = re.compile(r"^(unsupervised|from_(market1501|dukemtmc|msmt17))$")
MetricName = Literal["mAP", "R1", "R5", "R10"]
DatasetName = Literal["market1501", "dukemtmc", "msmt17"]
DEFAULT_TARGETS = Path(__file__).with_name("targets.yaml")


class Target(StrictModel):
    value: float | None = Field(..., ge=0.0, le=100.0, description="percent; null = not known yet")
    checked: bool = Field(False, description="read off the paper's PDF by a person")
    provenance: str = Field(..., min_length=3, description="where the number comes from")

    @model_validator(mode="after")
    def _checked_needs_value(self) -> Target:
        if self.checked and self.value is None:
            raise ValueError("checked: true needs a value (set the number or checked: false)")
        return self


class Paper(StrictModel):
    title: str
    venue: str


Settings = dict[str, dict[MetricName, Target]]


class TargetRegistry(StrictModel):
    version: Literal[1] = 1
    papers: dict[str, Paper]
    harness_methods: dict[str, str] = Field(default_factory=dict,
                                            description="harness method -> registry method it is compared with")
    targets: dict[str, dict[DatasetName, Settings]]

    @field_validator("targets")
    @classmethod
    def _settings_named(cls, v: dict[str, dict[str, Settings]]) -> dict[str, dict[str, Settings]]:
        for method, per_ds in v.items():
            for ds, settings in per_ds.items():
                for setting in settings:
                    if not _SETTING.match(setting) or setting == f"from_{ds}":
                        raise ValueError(f"{method}.{ds}: setting {setting!r} must be 'unsupervised' or "
                                         f"'from_<another dataset>'")
        return v

    @model_validator(mode="after")
    def _references_exist(self) -> TargetRegistry:
        for method in self.targets:
            if method not in self.papers:
                raise ValueError(f"targets.{method} has no entry under papers")
        for harness, method in self.harness_methods.items():
            if method not in self.targets:
                raise ValueError(f"harness_methods.{harness} points to {method!r}, not under targets")
        return self

    def registry_method(self, harness_method: str) -> str | None:
        """The registry entry a harness method (baseline, gcl, gcl_plus) is compared with."""
        return self.harness_methods.get(harness_method)

    def lookup(self, harness_method: str, dataset: str, setting: str) -> dict[str, Target]:
        """Targets of one harness method on one dataset and setting; empty when none exist."""
        method = self.registry_method(harness_method)
        if method is None:
            return {}
        return dict(self.targets.get(method, {}).get(dataset, {}).get(setting, {}))

    def missing_slots(self, method: str, settings_per_dataset: dict[str, list[str]]) -> list[str]:
        """Dotted keys of expected (dataset x setting x metric) slots absent from the registry."""
        have = self.targets.get(method, {})
        missing = []
        for ds, settings in settings_per_dataset.items():
            for setting in settings:
                for metric in METRICS:
                    if metric not in have.get(ds, {}).get(setting, {}):
                        missing.append(f"{method}.{ds}.{setting}.{metric}")
        return missing


def setting_name(source_dataset: str | None) -> str:
    """``unsupervised`` without a labelled source, else ``from_<source>`` (UDA)."""
    return UNSUPERVISED if source_dataset is None else f"from_{source_dataset}"


def load_targets(path: str | os.PathLike = DEFAULT_TARGETS) -> TargetRegistry:
    """Read and validate the registry; errors name the file and the dotted key at fault."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"paper targets registry not found: {path}",
                          "set report.targets to genreid/report/targets.yaml or a copy of it")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    try:
        return TargetRegistry.model_validate(raw)
    except ValidationError as exc:
        lines = [f"invalid paper targets in {path}:"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "<root>"
            lines.append(f"  {loc}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines), "fix the entry named above (layout in the file's header)") from None

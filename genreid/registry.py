"""The registry of stage-3 methods: the one place a method's name, label and report order are defined.

A method (an arm of the comparison: GCL, GCL+, the control arms) is one module under
``genreid/joint/arms/`` whose class carries ``@register_method(...)``. Everything that needs the list
of methods (config validation, the train stage's ``--method`` choices, evaluation, the report's order
and labels, the collector, the profiler) asks this module, so adding an arm is one file.

This module is deliberately low in the import graph (the config schema reads it): it imports no
torch and loads the arm modules only when a list or a class is first asked for.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genreid.errors import ConfigError

ARMS_PACKAGE = "genreid.joint.arms"

# Evaluated encoders that are not stage-3 methods, in report order: a fresh encoder, the source
# encoder applied to the target (UDA), and the warm-up encoder every stage-3 method starts from.
REFERENCE_RUNS: dict[str, str] = {"untrained": "untrained", "direct": "direct transfer", "baseline": "baseline"}
SOURCE_RUN = "source"  # UDA: the source-trained encoder, evaluated on its own dataset
PRETRAIN_RUN = "pretrain"  # stage 2: the generator every generative method starts from


@dataclass(frozen=True)
class MethodSpec:
    """What the pipeline needs to know about a method without building it."""

    name: str  # train.methods entry, --method value, results/<ds>/<name>/ folder
    label: str  # how the report writes it
    order: int  # position in the report's tables (lower first), after the reference runs
    config_key: str | None  # its own section under ``train`` (None: it has no settings of its own)
    needs_generator: bool  # trains with the pre-trained generator and the mesh renders
    cls: type


_METHODS: dict[str, MethodSpec] = {}
_arms_loaded = False


def register_method(name: str, label: str, order: int, *, needs_generator: bool,
                    config_key: str | None = None) -> Callable[[type], type]:
    """Class decorator: register ``cls`` as the stage-3 method ``name`` (each name once)."""

    def register(cls: type) -> type:
        if name in _METHODS or name in REFERENCE_RUNS or name in (SOURCE_RUN, PRETRAIN_RUN):
            raise ValueError(f"stage-3 method {name!r} is registered twice (by {cls.__module__}.{cls.__name__})")
        cls.name = name
        _METHODS[name] = MethodSpec(name, label, order, config_key, needs_generator, cls)
        return cls

    return register


def unregister_method(name: str) -> None:
    """Remove a method registered at run time (a test's dummy arm)."""
    _METHODS.pop(name, None)


def _load_arms() -> None:
    """Import every module of :data:`ARMS_PACKAGE` once, so that their decorators run."""
    global _arms_loaded
    if _arms_loaded:
        return
    package = importlib.import_module(ARMS_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{ARMS_PACKAGE}.{module.name}")
    _arms_loaded = True


def stage3_methods() -> tuple[MethodSpec, ...]:
    """Every registered method, in report order."""
    _load_arms()
    return tuple(sorted(_METHODS.values(), key=lambda m: (m.order, m.name)))


def method_names() -> tuple[str, ...]:
    """The names ``train.methods`` accepts, in report order."""
    return tuple(m.name for m in stage3_methods())


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``; a clear error for any other name."""
    _load_arms()
    if name not in _METHODS:
        raise ConfigError(f"--method {name!r} is not a stage-3 method",
                          f"use one of {', '.join(method_names())} (the baseline is the warm-up encoder, stage 1)")
    return _METHODS[name]


def report_order() -> tuple[str, ...]:
    """Every run the report lists, in its order: the reference runs, then the stage-3 methods."""
    return tuple(REFERENCE_RUNS) + method_names()


def evaluated_names() -> tuple[str, ...]:
    """Every encoder the evaluate stage accepts."""
    return report_order() + (SOURCE_RUN,)


def label(name: str) -> str:
    """How the report writes a run (its name when it is neither a reference run nor registered)."""
    _load_arms()
    if name in REFERENCE_RUNS:
        return REFERENCE_RUNS[name]
    spec: Any = _METHODS.get(name)
    return spec.label if spec is not None else name

"""The registry of stage-3 methods: the one place a method's name, label and report order are defined.

A method (an arm of the comparison: GCL, GCL+, the control arms) is one module under
``genreid/joint/arms/`` whose class carries ``@register_method(...)``. Everything that needs the list
of methods (config validation, the train stage's ``--method`` choices, evaluation, the report's order
and labels, the collector, the profiler) asks this module, so adding an arm is one file.

This module is deliberately low in the import graph (the config schema reads it): it imports no
torch. Names, labels and order are read from the arm modules' source (the decorator's literal
arguments), so validating a config or listing methods imports no arm; a module is imported when its
class is first asked for (``method_spec(name).cls``), and its decorator then registers the class.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
    module: str  # where its class is defined

    @property
    def cls(self) -> type:
        """The method's class; importing its module (torch and the training code) on first use."""
        if self.name not in _CLASSES:
            importlib.import_module(self.module)
        if self.name not in _CLASSES:
            raise ValueError(f"{self.module} declares stage-3 method {self.name!r} but registers no class for it")
        return _CLASSES[self.name]


_METHODS: dict[str, MethodSpec] = {}
_CLASSES: dict[str, type] = {}
_arms_read = False


def register_method(name: str, label: str, order: int, *, needs_generator: bool,
                    config_key: str | None = None) -> Callable[[type], type]:
    """Class decorator: register ``cls`` as the stage-3 method ``name`` (each name once).

    In a module of :data:`ARMS_PACKAGE` the arguments must be literals: the registry reads them from
    the source (:func:`_read_arms`), so listing or validating methods imports no arm."""

    def register(cls: type) -> type:
        spec = MethodSpec(name, label, order, config_key, needs_generator, cls.__module__)
        declared = _METHODS.get(name)
        if name in _CLASSES or name in REFERENCE_RUNS or name in (SOURCE_RUN, PRETRAIN_RUN) or (
                declared is not None and declared.module != spec.module):
            raise ValueError(f"stage-3 method {name!r} is registered twice (by {cls.__module__}.{cls.__name__})")
        if declared is not None and declared != spec:
            raise ValueError(f"{cls.__module__}: @register_method({name!r}, ...) differs from what its source "
                             "declares; pass literal arguments")
        cls.name = name
        _METHODS.setdefault(name, spec)
        _CLASSES[name] = cls
        return cls

    return register


def unregister_method(name: str) -> None:
    """Remove a method registered at run time (a test's dummy arm)."""
    _METHODS.pop(name, None)
    _CLASSES.pop(name, None)


def _declaration(node: ast.ClassDef, module: str, path: Path) -> MethodSpec | None:
    """The ``@register_method(...)`` arguments of a class, evaluated as literals."""
    for deco in node.decorator_list:
        func = deco.func if isinstance(deco, ast.Call) else None
        if not (isinstance(func, ast.Name) and func.id == "register_method"):
            continue
        try:
            args = dict(zip(("name", "label", "order"), (ast.literal_eval(a) for a in deco.args)))
            args.update({k.arg: ast.literal_eval(k.value) for k in deco.keywords if k.arg})
            return MethodSpec(args["name"], args["label"], args["order"], args.get("config_key"),
                              args["needs_generator"], module)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{deco.lineno}: @register_method needs literal name, label, order and "
                             f"needs_generator arguments (the registry reads them without importing): {exc}") from exc
    return None


def _read_arms() -> None:
    """Read every module of :data:`ARMS_PACKAGE` once and register what its decorators declare; the
    modules themselves are imported only when a class is asked for (:attr:`MethodSpec.cls`)."""
    global _arms_read
    if _arms_read:
        return
    folder = Path(__file__).resolve().parent / Path(*ARMS_PACKAGE.split(".")[1:])
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = f"{ARMS_PACKAGE}.{path.stem}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            spec = _declaration(node, module, path) if isinstance(node, ast.ClassDef) else None
            if spec is not None and _METHODS.setdefault(spec.name, spec) != spec:  # equal: imported already
                raise ValueError(f"stage-3 method {spec.name!r} is registered twice (again in {path})")
    _arms_read = True


def stage3_methods() -> tuple[MethodSpec, ...]:
    """Every registered method, in report order."""
    _read_arms()
    return tuple(sorted(_METHODS.values(), key=lambda m: (m.order, m.name)))


def method_names() -> tuple[str, ...]:
    """The names ``train.methods`` accepts, in report order."""
    return tuple(m.name for m in stage3_methods())


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``; a clear error for any other name."""
    _read_arms()
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
    _read_arms()
    if name in REFERENCE_RUNS:
        return REFERENCE_RUNS[name]
    spec: Any = _METHODS.get(name)
    return spec.label if spec is not None else name

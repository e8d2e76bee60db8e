"""Read a stage's ``params`` and ``deps`` from dvc.yaml, with ``foreach``/``matrix`` expanded.

The resume guard must fingerprint exactly what DVC tracks for the stage (the param keys it
lists, the code it depends on), so that an edit DVC ignores for that stage never resets its
checkpoints, and one DVC reruns it for always does. This reads dvc.yaml the way DVC does for
the subset the pipeline uses: ``${key}`` interpolation from params.yaml, ``foreach`` over a
list (``name@item``) and ``matrix`` (``name@v1-v2``, values in key order).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genreid.errors import GenreidError

_REF = re.compile(r"\$\{\s*([^}]+?)\s*\}")


@dataclass(frozen=True)
class StageSpec:
    """One expanded stage: its name, command lines, param keys (dotted) and dependency paths."""

    name: str
    cmd: tuple[str, ...]
    params: tuple[str, ...]
    deps: tuple[str, ...]


def _lookup(tree: Any, dotted: str, where: str) -> Any:
    node = tree
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise GenreidError(f"dvc.yaml {where}: ${{{dotted}}} is not defined in the params",
                               "check the key in params.yaml (or the dvc.yaml line)")
    return node


def interpolate(value: Any, context: Mapping[str, Any], where: str) -> Any:
    """``${a.b}`` replaced from ``context``; a string that is one reference keeps the value's type."""
    if isinstance(value, str):
        whole = _REF.fullmatch(value.strip())
        if whole:
            return _lookup(context, whole.group(1), where)
        return _REF.sub(lambda m: str(_lookup(context, m.group(1), where)), value)
    if isinstance(value, list):
        return [interpolate(v, context, where) for v in value]
    if isinstance(value, Mapping):
        return {interpolate(k, context, where): interpolate(v, context, where) for k, v in value.items()}
    return value


def _expand(name: str, body: Mapping[str, Any], params: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    """``(stage name, body with item interpolated)`` for every instance of a dvc.yaml entry."""
    if "foreach" in body:
        items = interpolate(body["foreach"], params, name)
        pairs = items.items() if isinstance(items, Mapping) else ((str(i), i) for i in items)
        for key, item in pairs:
            yield f"{name}@{key}", interpolate(body["do"], {**params, "item": item, "key": key}, name)
    elif "matrix" in body:
        axes = {k: interpolate(v, params, name) for k, v in body["matrix"].items()}
        rest = {k: v for k, v in body.items() if k != "matrix"}
        for combo in itertools.product(*axes.values()):
            item = dict(zip(axes, combo))
            yield f"{name}@{'-'.join(str(v) for v in combo)}", interpolate(rest, {**params, "item": item}, name)
    else:
        yield name, interpolate(dict(body), params, name)


def _param_keys(entries: Any) -> tuple[str, ...]:
    """``params:`` entries: dotted keys of params.yaml (``- other.yaml: [keys]`` is not used here)."""
    out: list[str] = []
    for entry in entries or []:
        if isinstance(entry, Mapping):
            raise GenreidError(f"dvc.yaml params entry {dict(entry)} names another params file",
                               "the resume guard reads params.yaml keys only; list them as plain keys")
        out.append(str(entry))
    return tuple(out)


def _strings(entries: Any) -> tuple[str, ...]:
    """Param/dep entries as plain strings (``- path: {cache: false}`` style mappings give their key)."""
    out: list[str] = []
    for entry in entries or []:
        if isinstance(entry, Mapping):
            out.extend(str(k) for k in entry)
        else:
            out.append(str(entry))
    return tuple(out)


def load_stages(dvc_yaml: str | Path, params: Mapping[str, Any]) -> dict[str, StageSpec]:
    """Every stage of ``dvc_yaml`` expanded against ``params`` (the params.yaml tree)."""
    from genreid.config.loader import read_yaml

    path = Path(dvc_yaml)
    try:
        doc = read_yaml(path.read_text()) or {}
    except OSError as exc:
        raise GenreidError(f"cannot read {path} ({exc.strerror})", "run from the repository root") from None
    stages: dict[str, StageSpec] = {}
    for name, body in (doc.get("stages") or {}).items():
        for full, spec in _expand(name, body, params):
            cmd = spec.get("cmd", ())
            stages[full] = StageSpec(full, tuple([cmd] if isinstance(cmd, str) else cmd),
                                     _param_keys(spec.get("params")), _strings(spec.get("deps")))
    return stages


def pipeline_outputs(dvc_yaml: str | Path, params: Mapping[str, Any]) -> set[str]:
    """Every path a stage of ``dvc_yaml`` writes (outs, metrics, plots), expanded against ``params``."""
    from genreid.config.loader import read_yaml

    doc = read_yaml(Path(dvc_yaml).read_text()) or {}
    found: set[str] = set()
    for name, body in (doc.get("stages") or {}).items():
        for _, spec in _expand(name, body, params):
            for kind in ("outs", "metrics", "plots"):
                found.update(p.rstrip("/") for p in _strings(spec.get(kind)))
    return found


def stage_for_folder(stages: Mapping[str, StageSpec], folder: str | Path, module: str) -> StageSpec:
    """The stage whose command runs ``python -m <module> <folder> ...`` (the guard finds its own stage)."""
    want = Path(folder).as_posix().rstrip("/")

    def runs_it(line: str) -> bool:
        tokens = line.split()
        return module in tokens and tokens[tokens.index(module) + 1:][:1] == [want]

    found = [s for s in stages.values() if any(runs_it(line) for line in s.cmd)]
    if len(found) != 1:
        raise GenreidError(f"no single dvc.yaml stage runs `{module} {want}` (found {[s.name for s in found]})",
                           "pass --stage <name@item> (as `dvc status` spells it)")
    return found[0]

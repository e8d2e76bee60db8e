"""Load, merge and validate params.

Recipes under ``params/`` may start with ``_base_: other.yaml`` (a path relative to the
recipe) and override only what differs, as FastReID's config files do. ``params.yaml`` is
the fully resolved tree (written by ``genreid recipe apply``) so DVC tracks every value.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import ruamel.yaml as ruamel_yaml
import yaml
from pydantic import ValidationError

from genreid.config.schema import GenreidConfig
from genreid.errors import ConfigError
from genreid.utils.atomic import write_text

BASE_KEY = "_base_"


def load_raw(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping, resolving ``_base_`` chains (cycles are an error)."""
    return _load_chain(Path(path), seen=())


def _load_chain(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(f"recipe include cycle: {chain}", "remove one of the _base_ lines")
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}", "check the path (recipes live under params/)")
    try:
        data = read_yaml(path.read_text())
    except (yaml.YAMLError, ruamel_yaml.YAMLError) as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:  # an empty file would silently mean "every default", i.e. the paper setting
        raise ConfigError(f"{path} is empty (no params at all)",
                          "restore it (`git checkout -- params.yaml`) or write it from a recipe: "
                          "`genreid recipe apply params/synthetic_cpu.yaml`")
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of params, found {type(data).__name__}")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    bases = [base] if isinstance(base, str) else base
    if not isinstance(bases, list) or not bases or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: {BASE_KEY} must be a recipe file name or a list of them, got {base!r}",
                          f"write e.g. `{BASE_KEY}: base.yaml` (a path relative to {path.parent})")
    merged: dict[str, Any] = {}
    for b in bases:
        merged = deep_merge(merged, _load_chain(path.parent / b, (*seen, path)))
    return deep_merge(merged, data)


def read_yaml(text: str) -> Any:
    """Parse YAML 1.2 as DVC does: `dvc exp run -S` rewrites params.yaml with ruamel, dropping
    quotes, and YAML 1.1 (PyYAML) would then read ``amp: off`` as False and ``1e-5`` as a string."""
    return ruamel_yaml.YAML(typ="safe", pure=True).load(text)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; lists and scalars in ``override`` replace those in ``base``."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def format_validation_error(exc: ValidationError, source: str, raw: dict[str, Any]) -> str:
    lines = [f"invalid params in {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = err["loc"][:-1]
            allowed = _allowed_keys(parent)
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  {loc}: unknown key{hint}")
            continue
        value = err.get("input")
        msg = err["msg"]
        if kind == "literal_error":
            msg = msg.replace("Input should be", "must be one of")
        if not err["loc"]:  # a cross-key rule: its message names the keys and values itself
            lines.append(f"  {msg.removeprefix('Value error, ')}")
            continue
        lines.append(f"  {loc}: {msg} (got {value!r})")
    return "\n".join(lines)


def _allowed_keys(loc: tuple) -> list[str]:
    model: Any = GenreidConfig
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part) if isinstance(part, str) else None
        if field is None:
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}).keys())


def validate(raw: dict[str, Any], source: str = "<params>") -> GenreidConfig:
    try:
        return GenreidConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, raw),
                          "edit the key named above (see params/README.md for every key)") from None


def load_config(path: str | os.PathLike = "params.yaml",
                overrides: dict[str, Any] | None = None) -> GenreidConfig:
    """Load and validate ``path``; ``overrides`` (dotted keys) are applied on top, for tests/CLI."""
    raw = load_raw(path)
    _require_complete_if_resolved(Path(path), raw)
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return validate(raw, str(path))


RESOLVED_MARK = "# Resolved from "  # the first line `genreid recipe apply` writes


def _require_complete_if_resolved(path: Path, raw: dict[str, Any]) -> None:
    """A file written by ``genreid recipe apply`` holds every section; one that lacks some was cut short (a full
    disk, a partial copy) and would otherwise validate with defaults for what is missing."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except OSError:
        return
    if not first.startswith(RESOLVED_MARK) or BASE_KEY in raw:
        return
    missing = [key for key in GenreidConfig.model_fields if key not in raw]
    if missing:
        recipe = first[len(RESOLVED_MARK):].split()[0] if first[len(RESOLVED_MARK):].split() else "<recipe>"
        raise ConfigError(f"{path} was written by `genreid recipe apply` but lacks the section(s) "
                          f"{', '.join(missing)}: the file was cut short (a full disk, a partial copy), and the "
                          "missing values would silently fall back to defaults",
                          f"rewrite it: `genreid recipe apply {recipe}` (then reapply any -S overrides)")


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def resolve_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The full params tree of a recipe: schema defaults, then the recipe chain, validated."""
    cfg = validate(load_raw(path), str(path))
    return cfg.model_dump(mode="json")


def dump_yaml(tree: dict[str, Any]) -> str:
    return yaml.safe_dump(tree, sort_keys=False, default_flow_style=False, width=100)


def write_resolved_config(cfg: GenreidConfig, out_dir: str | os.PathLike,
                          name: str = "config.resolved.yaml") -> Path:
    """Write the exact config a stage used next to its outputs."""
    path = Path(out_dir) / name
    write_text(path, dump_yaml(cfg.model_dump(mode="json")))
    return path

"""Typed configuration: one pydantic model tree for all params (see ``schema.py``).

``load_config(path)`` validates ``params.yaml`` (or a recipe with ``_base_`` includes) and
raises :class:`genreid.errors.ConfigError` naming the dotted key, the bad value and what is allowed.
"""

from genreid.config.loader import load_config, load_raw, resolve_recipe, validate
from genreid.config.schema import GenreidConfig

__all__ = ["GenreidConfig", "load_config", "load_raw", "resolve_recipe", "validate"]

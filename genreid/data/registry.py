"""Name -> dataset class. Adding a dataset is one small class decorated with ``@register_dataset``."""

from __future__ import annotations

from typing import TypeVar

from genreid.errors import DataError

_REGISTRY: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_dataset(cls: T) -> T:
    """Class decorator: make ``cls`` loadable as ``load_dataset(cls.name, root)``."""
    name = getattr(cls, "name", "")
    if not name:
        raise ValueError(f"{cls.__name__} must set a class attribute 'name' to be registered")
    existing = _REGISTRY.get(name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"dataset name {name!r} is already registered by {existing.__qualname__}")
    _REGISTRY[name] = cls
    return cls


def dataset_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get_dataset_class(name: str) -> type:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(_REGISTRY))}",
                        "use one of the known names or register a class with @register_dataset") from None


def _load_builtins() -> None:
    # Imported for their @register_dataset side effect.
    from genreid.data import dukemtmc, market1501, msmt17, synthetic  # noqa: F401

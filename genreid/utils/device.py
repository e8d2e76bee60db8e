"""Device resolution: ``auto`` picks CUDA when present, else CPU."""

from __future__ import annotations

from genreid.errors import ConfigError


def resolve_device(name: str = "auto"):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device is {name!r} but CUDA is not available",
                          "set runtime.device: auto or cpu")
    return torch.device(name)

"""Identity encoder E_id (GCL's ``ft_net``): ResNet trunk with last stride 1 and two heads.

``model(x)`` returns ``(a, f)``:
- ``a`` (B, stripes*C): appearance code for the generator, layer4 average-pooled into
  ``stripes`` horizontal stripes; stripe k (top to bottom) is ``a[:, k*C:(k+1)*C]`` (the decoder
  regroups it for its MLPs: ``model.generator.code_split``, the authors' channel-major split by default);
- ``f`` (B, embedding_dim): ReID embedding, global pool -> Linear -> BatchNorm1d (BN-neck),
  un-normalised (callers L2-normalise).
Checkpoints store the build arguments next to the weights and load strictly, because the
authors' ``strict=False`` loading silently kept ImageNet weights on key mismatches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from genreid.errors import CheckpointError, ConfigError, GenreidError
from genreid.models.layers import global_pool
from genreid.models.state import load_state_strict
from genreid.utils.atomic import torch_save
from genreid.utils.integrity import sealed, verify_sealed
from genreid.utils.safe_load import canonical, load_weights_only, plain, require_mappings

FORMAT = "genreid.id_encoder/1"
_BACKBONES = {
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights.IMAGENET1K_V1, 2048),
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1, 512),
}


def imagenet_weights_url(backbone: str) -> str:
    """The ImageNet weights :class:`IdEncoder` loads for ``backbone`` (torchvision's V1 files)."""
    return _BACKBONES[backbone][1].url


def imagenet_weights_path(backbone: str) -> Path:
    """Where torchvision looks for (and caches) the ImageNet weights of ``backbone``; ``genreid doctor``
    checks this same path, so the two can never disagree."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(imagenet_weights_url(backbone))


def _imagenet_state(backbone: str) -> dict[str, torch.Tensor]:
    weights = _BACKBONES[backbone][1]
    try:
        return weights.get_state_dict(progress=False, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - offline / proxy / corrupt file: all end in the same fix
        raise GenreidError(
            f"cannot load ImageNet weights for {backbone} ({type(exc).__name__}: {exc})",
            f"download {weights.url} and place it at {imagenet_weights_path(backbone)} "
            "(or set TORCH_HOME), or set model.pretrained: none") from exc


class IdEncoder(nn.Module):
    """ResNet trunk + stripe appearance head + BN-neck embedding head."""

    def __init__(self, backbone: str = "resnet50", pretrained: str = "imagenet", pooling: str = "avg",
                 embedding_dim: int = 512, last_stride: int = 1, stripes: int = 4):
        super().__init__()
        if backbone not in _BACKBONES:
            raise ConfigError(f"model.backbone {backbone!r} is not supported", f"use one of {sorted(_BACKBONES)}")
        if pretrained not in ("imagenet", "none"):
            raise ConfigError(f"model.pretrained {pretrained!r} is not supported", "use 'imagenet' or 'none'")
        if last_stride not in (1, 2):
            raise ConfigError(f"model.last_stride must be 1 or 2, got {last_stride}")
        ctor, _, channels = _BACKBONES[backbone]
        trunk = ctor(weights=None)
        if pretrained == "imagenet":
            trunk.load_state_dict(_imagenet_state(backbone))
        if last_stride == 1:
            block = trunk.layer4[0]
            (block.conv2 if backbone == "resnet50" else block.conv1).stride = (1, 1)
            block.downsample[0].stride = (1, 1)
        self.stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4
        self.stripe_pool = nn.AdaptiveAvgPool2d((stripes, 1))
        self.pool = global_pool(pooling)
        self.fc = nn.Linear(channels, embedding_dim)
        self.bn_neck = nn.BatchNorm1d(embedding_dim)
        nn.init.kaiming_normal_(self.fc.weight, mode="fan_out")
        nn.init.zeros_(self.fc.bias)
        self.channels = channels
        self.stripes = stripes
        self.appearance_dim = stripes * channels
        self.embedding_dim = embedding_dim
        self.arch: dict[str, Any] = {"backbone": backbone, "pretrained": pretrained, "pooling": pooling,
                                     "embedding_dim": embedding_dim, "last_stride": last_stride, "stripes": stripes}

    def set_pooling(self, kind: str) -> None:
        """Replace the embedding's global pooling (stage 3 may average-pool a GeM-trained warm-up encoder)."""
        if kind != self.arch["pooling"]:
            self.pool = global_pool(kind).to(self.fc.weight.device)
            self.arch["pooling"] = kind

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.feature_map(x)
        a = self.stripe_pool(fmap).flatten(2).transpose(1, 2).reshape(x.shape[0], self.appearance_dim)
        f = self.bn_neck(self.fc(self.pool(fmap).flatten(1)))
        return a, f


def build_encoder(backbone: str = "resnet50", pretrained: str = "imagenet", pooling: str = "avg",
                  embedding_dim: int = 512, last_stride: int = 1, stripes: int = 4) -> IdEncoder:
    """The identity encoder; ``pretrained='imagenet'`` needs torchvision's weight file (see errors)."""
    return IdEncoder(backbone, pretrained, pooling, embedding_dim, last_stride, stripes)


_ARCH_KEYS = ("backbone", "pretrained", "pooling", "embedding_dim", "last_stride", "stripes")


def _unwrap(model: nn.Module) -> IdEncoder:
    inner = getattr(model, "module", model)  # DistributedDataParallel / DataParallel
    if not isinstance(inner, IdEncoder):
        raise TypeError(f"expected an IdEncoder, got {type(inner).__name__}")
    return inner


def save_encoder(model: nn.Module, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write arch + weights + ``extra`` (epoch, selected_on, resumed, ...) atomically.

    Everything is stored as plain values and tensors so :func:`load_encoder` reads it with
    ``weights_only=True`` (no code in the file can run)."""
    enc = _unwrap(model)
    state = {k: v.detach().cpu() for k, v in enc.state_dict().items()}
    return torch_save(sealed({"format": FORMAT, "arch": plain(enc.arch, "arch"), "state_dict": state,
                              "extra": canonical(plain(dict(extra or {})))}), path)


def load_encoder(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[IdEncoder, dict]:
    """Rebuild the encoder from its stored arch and load the weights strictly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"encoder checkpoint not found: {path}",
                              "run the stage that writes it (e.g. `dvc repro warmup`) or fix the path")
    blob = load_weights_only(path, "encoder checkpoint", "rerun the stage that writes it", map_location)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or "arch" not in blob:
        raise CheckpointError(f"{path} is not a genreid identity-encoder checkpoint (format {FORMAT} expected)",
                              "write it with genreid.models.id_encoder.save_encoder")
    require_mappings(path, blob, {"arch": "build arguments", "state_dict": "weights"})
    unknown = sorted(set(blob["arch"]) - set(_ARCH_KEYS))
    if unknown:
        raise CheckpointError(f"{path}: entry 'arch' has unknown build argument(s) {unknown}",
                              f"the file was written by other code; expected only {list(_ARCH_KEYS)}")
    arch = dict(blob["arch"], pretrained="none")  # the stored weights replace any initialisation
    try:
        model = build_encoder(**arch)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: entry 'arch' does not describe an encoder ({exc})",
                              "delete the file and rerun the stage that writes it") from None
    load_state_strict(model, blob["state_dict"], str(path))  # names edited keys before the hash check would
    verify_sealed(blob, path, "encoder checkpoint")
    model.arch["pretrained"] = blob["arch"].get("pretrained", "none")
    return model.to(map_location), dict(blob.get("extra", {}))

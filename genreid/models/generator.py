"""The generator triple (E_str, G, D): construction from widths, strict save and load.

``generator.pt`` stores each network's build arguments next to its weights, so a later stage
rebuilds exactly what was trained and a width mismatch fails loudly (never a partial load).
Files written before ``code_split``/``decoder_norm``/``aspp_activation`` existed are refused with
a message (their networks computed something else; retrain stage 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genreid.config.sections.model import GeneratorWidths
from genreid.errors import CheckpointError
from genreid.models.decoder import CodeOptions, Decoder
from genreid.models.discriminator import MultiScaleDiscriminator
from genreid.models.state import load_state_strict
from genreid.models.structure_encoder import StructureEncoder
from genreid.utils.atomic import torch_save
from genreid.utils.integrity import sealed, verify_sealed
from genreid.utils.safe_load import canonical, load_weights_only, plain, require_mappings

FORMAT = "genreid.generator/1"


def build_generator(widths: GeneratorWidths, stripe_dim: int, stripes: int, *, adain_scale_offset: float = 0.0,
                    code_norm: bool = False) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(E_str, G, D) from ``model.generator`` (widths and the authors'-code switches, defined once in the
    config section) and the decoder's two stage-2 switches; each MLP reads C of the identity encoder's
    ``stripes x stripe_dim`` appearance code."""
    e_str = StructureEncoder(tuple(widths.str_channels), widths.str_out, widths.res_blocks,
                             aspp_activation=widths.aspp_activation)
    dec = Decoder(stripe_dim=stripe_dim, stripes=stripes, in_channels=widths.str_out,
                  channels=tuple(widths.dec_channels), res_blocks=widths.res_blocks, mlp_dim=widths.mlp_dim,
                  code=CodeOptions(scale_offset=adain_scale_offset, code_norm=code_norm,
                                   code_split=widths.code_split), norm=widths.decoder_norm)
    dis = MultiScaleDiscriminator(tuple(widths.dis_channels), widths.dis_scales, widths.res_blocks)
    return e_str, dec, dis


def _inner(m: nn.Module) -> nn.Module:
    return getattr(m, "module", m)


def save_generator(path: str | os.PathLike, str_encoder: nn.Module, decoder: nn.Module, discriminator: nn.Module,
                   extra: dict[str, Any] | None = None, optimisers: dict[str, dict] | None = None) -> Path:
    """Write the three networks' build arguments and weights (and, from stage 2, the Adam states of
    E_str+G and D, which the authors' stage 3 resumes); plain values only, so :func:`load_generator`
    reads the file with ``weights_only=True``."""
    nets = {"str_encoder": _inner(str_encoder), "decoder": _inner(decoder), "discriminator": _inner(discriminator)}
    blob = {"format": FORMAT, "arch": {k: plain(dict(m.arch), f"arch.{k}") for k, m in nets.items()},
            "state": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()} for k, m in nets.items()},
            "extra": canonical(plain(dict(extra or {})))}
    if optimisers is not None:
        blob["optimisers"] = optimisers
    return torch_save(sealed(blob), path)


def load_generator_optimisers(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, dict]:
    """The stage-2 optimiser states stored in ``generator.pt`` ({'g': ..., 'd': ...})."""
    blob = load_weights_only(Path(path), "generator checkpoint", "rerun the pretrain stage", map_location)
    verify_sealed(blob, path, "generator checkpoint")
    state = blob.get("optimisers") if isinstance(blob, dict) else None
    if not isinstance(state, dict) or set(state) != {"g", "d"}:
        raise CheckpointError(f"{path} holds no stage-2 optimiser states (written by an older genreid or imported)",
                              "rerun the pretrain stage, or set train.gan_optimizer: fresh")
    return state


def load_generator(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                   ) -> tuple[nn.Module, nn.Module, nn.Module, dict[str, Any]]:
    """Rebuild (E_str, G, D) from their stored build arguments and load the weights strictly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"generator checkpoint not found: {path}",
                              "run the pretrain stage first (`dvc repro pretrain@<dataset>`)")
    blob = load_weights_only(path, "generator checkpoint", "rerun the pretrain stage", map_location)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a genreid generator checkpoint (format {FORMAT} expected)",
                              "write it with genreid.models.generator.save_generator")
    require_mappings(path, blob, {"arch": "build arguments", "state": "weights per network"})
    arch, nets = blob["arch"], ("str_encoder", "decoder", "discriminator")
    require_mappings(path, arch, {n: "build arguments" for n in nets}, "arch.")
    if "code_split" not in arch["decoder"] or "aspp_activation" not in arch["str_encoder"]:
        raise CheckpointError(f"{path} was written before the generator followed the authors' networks "
                              "(model.generator.code_split / decoder_norm / aspp_activation)",
                              "rerun the pretrain stage (`dvc repro pretrain@<dataset>`)")
    require_mappings(path, blob["state"], {n: "weights" for n in nets}, "state.")
    try:
        e_str = StructureEncoder(**arch["str_encoder"])
        dec = Decoder.from_arch(arch["decoder"])
        dis = MultiScaleDiscriminator(**arch["discriminator"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: entry 'arch' does not describe the generator networks ({exc})",
                              "delete it and rerun the pretrain stage") from None
    for name, module in (("str_encoder", e_str), ("decoder", dec), ("discriminator", dis)):
        load_state_strict(module, blob["state"][name], f"{path} [{name}]")
    verify_sealed(blob, path, "generator checkpoint")  # after the strict load, which names edited keys
    return e_str.to(map_location), dec.to(map_location), dis.to(map_location), dict(blob.get("extra", {}))

"""Import the authors' checkpoints (docs/method.md#the-authors-checkpoint-files) into genreid's ``encoder.pt`` / ``generator.pt``.

Inputs, as the authors' scripts read and write them:
- a stage-1 identity encoder (JVTC's ``ft_net``, e.g. ``resnet50_market075_epoch00045.pth``): a ResNet
  state dict (``conv1``, ``bn1``, ``layer1-4``, ``feat``, ``feat_bn``, JVTC's ``classifier``), possibly
  under ``state_dict`` and with ``module.`` prefixes;
- the trainer's snapshots: ``id_*.pt`` = {'id': ft_net}, ``gen_*.pt`` = {'gen': AdaINGen},
  ``dis_*.pt`` = {'dis': MsImageDis}.

The mapping is strict, unlike the authors' ``strict=False`` loads: every key of their file is renamed
to exactly one genreid key or dropped for a stated reason (:data:`DROPPED`), every genreid key is
filled, shapes agree, or :class:`AuthorsImportError` lists every problem and nothing is written.
The renaming functions are pure (state dict in, state dict out); the networks' build arguments are
read off the tensors' shapes, so any width the authors' classes can produce imports, and the
authors' behaviour is selected where genreid has a switch (channel split of the appearance code,
their layer norm, no ASPP activation, average pooling, no code standardisation, raw AdaIN scales).
Key names and shapes at paper widths: ``tests/fixtures/authors_state_dicts.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genreid.errors import CheckpointError
from genreid.models.decoder import Decoder
from genreid.models.discriminator import MultiScaleDiscriminator
from genreid.models.id_encoder import IdEncoder
from genreid.models.structure_encoder import StructureEncoder
from genreid.utils.atomic import atomic_path
from genreid.utils.safe_load import safe_reason

State = dict[str, torch.Tensor]
Rule = tuple[str, "str | Callable[[re.Match], str]"]  # (authors key pattern, genreid key template or function)
# Authors' keys genreid's networks cannot hold, and why dropping them changes nothing they compute.
DROPPED: dict[str, str] = {
    "classifier": "JVTC's training classifier; GCL's ft_net has none and the authors' strict=False load "
                  "drops it too (the papers' E_id is trunk + feat + feat_bn)",
    "adain_buffers": "running_mean/running_var of the authors' AdaptiveInstanceNorm2d are dummy buffers: "
                     "their forward normalises each sample with its own statistics and never reads them",
}
_RULES_ID: list[Rule] = [
    (r"conv1\.weight", "stem.0.weight"),
    (r"bn1\.(.+)", r"stem.1.\1"),
    (r"(layer[1-4]\..+)", r"\1"),
    (r"feat\.(weight|bias)", r"fc.\1"),
    (r"feat_bn\.(.+)", r"bn_neck.\1"),
]
_RULES_E_STR: list[Rule] = [
    (r"enc_content\.model\.([0-3])\.conv\.(weight|bias)", r"stem.\1.conv.\2"),
    (r"enc_content\.model\.4\.model\.(\d+)\.model\.([01])\.conv\.(weight|bias)",
     lambda m: f"stem.{4 + int(m.group(1))}.body.{m.group(2)}.conv.{m.group(3)}"),
    (r"enc_content\.model\.5\.conv1\.conv\.(weight|bias)", r"aspp.branches.0.conv.\1"),
    (r"enc_content\.model\.5\.conv6\.([01])\.conv\.(weight|bias)", r"aspp.branches.1.\1.conv.\2"),
    (r"enc_content\.model\.5\.conv12\.([01])\.conv\.(weight|bias)", r"aspp.branches.2.\1.conv.\2"),
    (r"enc_content\.model\.5\.conv18\.([01])\.conv\.(weight|bias)", r"aspp.branches.3.\1.conv.\2"),
    (r"enc_content\.model\.5\.fuse\.conv\.(weight|bias)", r"aspp.fuse.conv.\1"),
]
_RULES_DEC: list[Rule] = [
    (r"dec\.model\.1\.model\.(\d+)\.model\.([01])\.conv\.(weight|bias)",
     lambda m: f"blocks.{m.group(1)}.conv{int(m.group(2)) + 1}.conv.{m.group(3)}"),
    (r"dec\.model\.3\.conv\.(weight|bias)", r"up.1.conv.\1"),
    (r"dec\.model\.3\.norm\.(gamma|beta)", r"up.1.norm.\1"),
    (r"dec\.model\.5\.conv\.(weight|bias)", r"up.3.conv.\1"),
    (r"dec\.model\.5\.norm\.(gamma|beta)", r"up.3.norm.\1"),
    (r"dec\.model\.([678])\.conv\.(weight|bias)", lambda m: f"up.{int(m.group(1)) - 2}.conv.{m.group(2)}"),
    # mlp_wK (AdaIN weights = scales) -> mlp_scale[K-1], mlp_bK -> mlp_bias[K-1]; Linear j of their MLP is
    # index 2j of genreid's Sequential(Linear, LeakyReLU, Linear, LeakyReLU, Linear)
    (r"mlp_([wb])(\d+)\.model\.([012])\.fc\.(weight|bias)",
     lambda m: f"{'mlp_scale' if m.group(1) == 'w' else 'mlp_bias'}.{int(m.group(2)) - 1}.{2 * int(m.group(3))}"
               f".{m.group(4)}"),
]
_RULES_DIS: list[Rule] = [
    (r"cnns\.(\d+)\.([0-4])\.conv\.(weight|bias)", r"nets.\1.\2.conv.\3"),
    (r"cnns\.(\d+)\.(\d+)\.model\.([01])\.conv\.(weight|bias)", r"nets.\1.\2.body.\3.conv.\4"),
    (r"cnns\.(\d+)\.(\d+)\.(weight|bias)", r"nets.\1.\2.\3"),
]


class AuthorsImportError(CheckpointError):
    """The authors' file does not map one-to-one onto genreid's networks (nothing was written)."""


@dataclass
class Conversion:
    """One network's converted state and the account of every key on both sides."""

    network: str
    state: State = field(default_factory=dict)
    mapped: list[tuple[str, str]] = field(default_factory=list)  # (authors key, genreid key)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (authors key, reason)
    filled: list[tuple[str, str]] = field(default_factory=list)  # (genreid key, reason)
    unmapped: list[str] = field(default_factory=list)  # authors keys no rule knows
    missing: list[str] = field(default_factory=list)  # genreid keys nothing maps to
    unexpected: list[str] = field(default_factory=list)  # converted keys genreid's network lacks
    shape_errors: list[str] = field(default_factory=list)
    value_errors: list[str] = field(default_factory=list)  # non-finite weights, dtypes of another kind
    arch: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.unmapped or self.missing or self.unexpected or self.shape_errors or self.value_errors)

    def summary(self) -> dict[str, Any]:
        """What the import did, for the written file's ``extra`` and the command's output."""
        return {"network": self.network, "mapped": len(self.mapped), "dropped": _by_reason(self.dropped),
                "filled": _by_reason(self.filled), "arch": self.arch}

    def problems(self, limit: int = 20) -> str:
        lines = []
        for title, items in (("authors' keys with no genreid counterpart", self.unmapped),
                             ("genreid keys the authors' file does not provide", self.missing),
                             ("converted keys genreid's network does not have", self.unexpected),
                             ("shape mismatches", self.shape_errors),
                             ("dtype mismatches and non-finite weights", self.value_errors)):
            if items:
                lines.append(f"  {self.network}: {title} ({len(items)}):")
                lines += [f"      {k}" for k in items[:limit]]
                if len(items) > limit:
                    lines.append(f"      ... and {len(items) - limit} more")
        return "\n".join(lines)


def _by_reason(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, why in pairs:
        out.setdefault(why, []).append(key)
    return out


def unwrap(obj: Any, names: tuple[str, ...]) -> State:
    """The tensor dict inside a loaded file: under one of ``names`` (e.g. 'id', 'state_dict') or the
    file itself, with DataParallel's ``module.`` prefixes removed."""
    while isinstance(obj, Mapping) and not _is_state(obj):
        inner = [n for n in names if n in obj]
        if not inner:
            raise AuthorsImportError(f"expected a state dict or a dict with one of {list(names)}, "
                                     f"found keys {sorted(obj)[:8]}")
        obj = obj[inner[0]]
    if not isinstance(obj, Mapping) or not _is_state(obj):
        raise AuthorsImportError(f"expected a state dict of tensors, found {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _is_state(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _rename(state: State, rules: list[Rule], conv: Conversion) -> None:
    for key, tensor in state.items():
        for pattern, target in rules:
            m = re.fullmatch(pattern, key)
            if m:
                new = target(m) if callable(target) else m.expand(target)
                conv.state[new] = tensor
                conv.mapped.append((key, new))
                break
        else:
            conv.unmapped.append(key)


def rename_id_encoder(state: State) -> Conversion:
    """ft_net (GCL, JVTC) -> :class:`IdEncoder` keys; JVTC's classifier is dropped."""
    conv = Conversion("identity encoder")
    kept = {}
    for k, v in state.items():
        if re.fullmatch(r"classifier\.(weight|bias)", k):
            conv.dropped.append((k, DROPPED["classifier"]))
        else:
            kept[k] = v
    _rename(kept, _RULES_ID, conv)
    return conv


def rename_generator(state: State) -> tuple[Conversion, Conversion]:
    """AdaINGen -> (:class:`StructureEncoder`, :class:`Decoder`) keys; AdaIN's dummy buffers are dropped."""
    e_str, dec = Conversion("structure encoder"), Conversion("decoder")
    enc_part = {k: v for k, v in state.items() if k.startswith("enc_content.")}
    dec_part = {}
    for k, v in state.items():
        if k.startswith("enc_content."):
            continue
        if re.fullmatch(r"dec\.model\.1\.model\.\d+\.model\.[01]\.norm\.running_(mean|var)", k):
            dec.dropped.append((k, DROPPED["adain_buffers"]))
        else:
            dec_part[k] = v
    _rename(enc_part, _RULES_E_STR, e_str)
    _rename(dec_part, _RULES_DEC, dec)
    return e_str, dec


def rename_discriminator(state: State) -> Conversion:
    """MsImageDis -> :class:`MultiScaleDiscriminator` keys (same layer order; ResBlock ``model`` -> ``body``)."""
    conv = Conversion("discriminator")
    _rename(state, _RULES_DIS, conv)
    return conv


def _count(state: State, pattern: str) -> int:
    return len({m.group(1) for k in state if (m := re.fullmatch(pattern, k))})


def _shape(state: State, key: str, dim: int = 0) -> int:
    if key not in state:
        raise AuthorsImportError(f"the authors' file has no {key!r}, so its architecture cannot be read off",
                                 "pass the file the option names (--id ft_net, --gen gen_*.pt, --dis dis_*.pt)")
    return int(state[key].shape[dim])


def encoder_arch(state: State, stripes: int = 4) -> dict[str, Any]:
    """IdEncoder build arguments of an authors' ft_net: ResNet-50 (or -18 for small test sets), last
    stride 1, average pooling (their ``avgpool``), embedding = ``feat`` width, 4 stripes (their partpool)."""
    backbone = "resnet50" if "layer1.0.conv3.weight" in state else "resnet18"
    return {"backbone": backbone, "pretrained": "none", "pooling": "avg",
            "embedding_dim": _shape(state, "feat.weight"), "last_stride": 1, "stripes": stripes}


def generator_arch(gen: State, dis: State) -> dict[str, dict[str, Any]]:
    """Build arguments of (E_str, G, D) read off an AdaINGen / MsImageDis state, with the authors' switches."""
    e = "enc_content.model."
    str_channels = [_shape(gen, f"{e}{i}.conv.weight") for i in range(4)]
    n_mlp = _count(gen, r"mlp_w(\d+)\..+")
    e_str = {"channels": str_channels, "out_channels": _shape(gen, f"{e}5.fuse.conv.weight"),
             "res_blocks": _count(gen, r"enc_content\.model\.4\.model\.(\d+)\..+"), "dilations": [3, 6, 9],
             "aspp_activation": "none"}
    dec = {"stripe_dim": _shape(gen, "mlp_w1.model.0.fc.weight", 1), "stripes": n_mlp,
           "in_channels": _shape(gen, "dec.model.1.model.0.model.0.conv.weight"),
           "channels": [_shape(gen, "dec.model.3.conv.weight"), _shape(gen, "dec.model.5.conv.weight")],
           "res_blocks": _count(gen, r"dec\.model\.1\.model\.(\d+)\..+"),
           "mlp_dim": _shape(gen, "mlp_w1.model.0.fc.weight"), "scale_offset": 0.0, "code_norm": False,
           "code_split": "channels", "norm": "authors_ln"}
    dis_arch = {"channels": [_shape(dis, "cnns.0.0.conv.weight"), _shape(dis, "cnns.0.4.conv.weight")],
                "scales": _count(dis, r"cnns\.(\d+)\..+"),
                "res_blocks": _count(dis, r"cnns\.0\.(\d+)\.model\..+")}
    return {"str_encoder": e_str, "decoder": dec, "discriminator": dis_arch}


def check(conv: Conversion, module: nn.Module, arch: dict[str, Any]) -> Conversion:
    """Account for genreid's side: fill num_batches_tracked counters older files lack, then list keys
    nothing provides, converted keys the network lacks and shape mismatches."""
    own = module.state_dict()
    conv.arch = dict(arch)
    for k in sorted(set(own) - set(conv.state)):
        if k.endswith("num_batches_tracked"):
            conv.state[k] = torch.zeros((), dtype=torch.long)
            conv.filled.append((k, "BatchNorm step counter absent from files of older PyTorch; unused with "
                                   "a fixed momentum"))
    conv.missing = sorted(set(own) - set(conv.state))
    conv.unexpected = sorted(set(conv.state) - set(own))
    conv.shape_errors = [f"{k}: authors {tuple(conv.state[k].shape)} vs genreid {tuple(own[k].shape)}"
                         for k in sorted(set(own) & set(conv.state))
                         if tuple(conv.state[k].shape) != tuple(own[k].shape)]
    conv.value_errors = value_errors(conv.state, own)
    return conv


def value_errors(state: State, own: State) -> list[str]:
    """Tensors a network cannot take as they are: of another kind than genreid's (float vs integer; a float
    precision is cast exactly as ``load_state_dict`` does), or holding NaN / infinite values."""
    out = []
    for key in sorted(set(state) & set(own)):
        theirs, ours = state[key], own[key]
        if not isinstance(theirs, torch.Tensor):
            out.append(f"{key}: {type(theirs).__name__}, not a tensor")
        elif theirs.is_floating_point() != ours.is_floating_point() or theirs.is_complex():
            out.append(f"{key}: authors {theirs.dtype} vs genreid {ours.dtype}")
        elif theirs.is_floating_point() and not bool(torch.isfinite(theirs).all()):
            bad = int((~torch.isfinite(theirs)).sum())
            out.append(f"{key}: {bad} of {theirs.numel()} values are NaN or infinite")
    return out


def convert_id_encoder(state: State, stripes: int = 4) -> tuple[Conversion, IdEncoder | None]:
    """(account, loaded IdEncoder or None when the mapping is not exact)."""
    conv = rename_id_encoder(state)
    if conv.unmapped:
        return conv, None
    arch = encoder_arch(state, stripes)
    model = IdEncoder(**arch)
    check(conv, model, arch)
    if not conv.ok:
        return conv, None
    model.load_state_dict(conv.state, strict=True)
    return conv, model


def convert_generator(gen: State, dis: State) -> tuple[list[Conversion], tuple[nn.Module, ...] | None]:
    """(accounts of E_str, G, D; the loaded networks or None when any mapping is not exact)."""
    e_str, dec = rename_generator(gen)
    d = rename_discriminator(dis)
    convs = [e_str, dec, d]
    if any(c.unmapped for c in convs):
        return convs, None
    arch = generator_arch(gen, dis)
    nets = (StructureEncoder(**arch["str_encoder"]), Decoder.from_arch(arch["decoder"]),
            MultiScaleDiscriminator(**arch["discriminator"]))
    for c, net, a in zip(convs, nets, arch.values()):
        check(c, net, a)
    if not all(c.ok for c in convs):
        return convs, None
    for c, net in zip(convs, nets):
        net.load_state_dict(c.state, strict=True)
    return convs, nets


def read_authors_file(path: str | os.PathLike, names: tuple[str, ...]) -> State:
    path = Path(path)
    if not path.is_file():
        raise AuthorsImportError(f"authors' checkpoint not found: {path}", "check the path")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - not a torch file, or pickled objects beyond tensors
        raise AuthorsImportError(f"cannot read {path} as plain tensors: {safe_reason(exc)}; genreid never loads "
                                 "files that need code to unpickle",
                                 "pass the checkpoint file itself (a state dict saved with torch.save)") from None
    try:
        return unwrap(blob, names)
    except AuthorsImportError as exc:
        raise AuthorsImportError(f"{path}: {exc.problem}") from None


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def output_paths(out_dir: str | os.PathLike, with_generator: bool) -> list[Path]:
    """The files an import writes."""
    out = Path(out_dir)
    return [out / "encoder.pt"] + ([out / "generator.pt"] if with_generator else [])


def refuse_overwrite(paths: list[Path], force: bool, tracked: set[str] = frozenset()) -> None:
    """An import never replaces a pipeline output (``tracked``: paths DVC writes, relative to the repository),
    nor, without ``force``, any existing file."""
    for path in paths:
        rel = os.path.relpath(path.absolute()).replace(os.sep, "/")
        if rel in tracked:
            raise AuthorsImportError(f"--out would write {rel}, which a DVC stage writes (a pipeline output)",
                                     "import into a folder of its own (e.g. --out data/models/authors/<dataset>) "
                                     "and point warmup.import_encoder at it")
        if path.exists() and not force:
            raise AuthorsImportError(f"{path} exists; an import does not overwrite it",
                                     "choose another --out folder, or pass --force to replace it")


def import_authors(id_path: str | os.PathLike, out_dir: str | os.PathLike, gen_path: str | os.PathLike | None = None,
                   dis_path: str | os.PathLike | None = None, *, force: bool = False,
                   tracked: set[str] = frozenset()) -> dict[str, Any]:
    """Convert the authors' files and write ``out_dir/encoder.pt`` (+ ``generator.pt`` with --gen/--dis).

    Existing files are refused unless ``force``, pipeline outputs (``tracked``) always. Everything is
    converted and checked (keys, shapes, dtypes, finite values) before anything is written; any problem
    raises :class:`AuthorsImportError` listing all problems of all files. Returns the import summary.
    """
    from genreid.models.generator import save_generator
    from genreid.models.id_encoder import save_encoder

    if (gen_path is None) != (dis_path is None):
        raise AuthorsImportError("--gen and --dis go together: generator.pt holds E_str, G and D",
                                 "pass both gen_*.pt and dis_*.pt from the same snapshot, or neither")
    refuse_overwrite(output_paths(out_dir, gen_path is not None), force, tracked)
    gen = read_authors_file(gen_path, ("gen",)) if gen_path else None
    dis = read_authors_file(dis_path, ("dis",)) if dis_path else None
    id_state = read_authors_file(id_path, ("id", "state_dict"))
    stripes = _count(gen, r"mlp_w(\d+)\..+") if gen is not None else 4
    id_conv, encoder = convert_id_encoder(id_state, stripes)
    convs: list[Conversion] = [id_conv]
    nets = None
    if gen is not None:
        gen_convs, nets = convert_generator(gen, dis)
        convs += gen_convs
    if encoder is None or (gen is not None and nets is None):
        detail = "\n".join(c.problems() for c in convs if not c.ok)
        raise AuthorsImportError(
            f"the authors' checkpoints do not map exactly onto genreid's networks; nothing was written:\n{detail}",
            "check that the files are the authors' ft_net / AdaINGen / MsImageDis state dicts "
            "(docs/method.md#the-authors-checkpoint-files); genreid never loads weights partially")
    if gen is not None and encoder.channels != nets[1].stripe_dim:
        raise AuthorsImportError(f"the generator's MLPs read {nets[1].stripe_dim} channels but the identity "
                                 f"encoder has {encoder.channels}: the files come from different runs")
    stage = "stage-2/3 snapshot" if gen is not None else "stage-1 weights"
    sources = {"id": id_path} | ({"gen": gen_path, "dis": dis_path} if gen is not None else {})
    provenance = {"source": f"authors' {stage}",
                  "files": {k: {"path": str(v), "sha256": sha256(v)} for k, v in sources.items()}}
    out = Path(out_dir)
    # both files are complete under temporary names before either replaces an existing one
    with contextlib.ExitStack() as stack:
        tmp_enc = stack.enter_context(atomic_path(out / "encoder.pt"))
        save_encoder(encoder, tmp_enc, {"method": "authors_import", "selected_on": "authors_weights",
                                        **provenance, "import": id_conv.summary()})
        if nets is not None:
            tmp_gen = stack.enter_context(atomic_path(out / "generator.pt"))
            save_generator(tmp_gen, *nets, extra={**provenance, "import": [c.summary() for c in convs[1:]]})
    written = [str(out / "encoder.pt")] + ([str(out / "generator.pt")] if nets is not None else [])
    return {**provenance, "written": written, "networks": [c.summary() for c in convs]}

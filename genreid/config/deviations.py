"""Every remaining difference from the authors' code (GCL, GCL+) and from Cluster-Contrast (stage 1).

One list, :data:`DEVIATIONS`, feeds the table in ``params/README.md`` (``genreid.config.docs``), the
recipe check :func:`kept` (``genreid recipe deviations <recipe>``) and the test that
``params/ablations/authors_code.yaml`` restores every switchable row. A row names the keys and the
values that restore the authors' behaviour; a row without keys is a difference that cannot be
switched (and says why). Adding a key that departs from the authors' code means adding a row here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from genreid.config.schema import GenreidConfig

ANGLES_AUTHORS = [45, 90, 135, 180, 225, 270]


@dataclass(frozen=True)
class AnyPath:
    """An authors' value that is a user's file: any path restores the row (``what`` says which file)."""

    what: str
    example: str

    def matches(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value) and value != "procedural"

    def __str__(self) -> str:
        return f"path of {self.what}, e.g. `{self.example}`"


@dataclass(frozen=True)
class Deviation:
    topic: str
    source: str  # whose behaviour genreid departs from: "GCL code", "GCL+ code", "Cluster-Contrast", ...
    why: str
    authors: dict[str, Any] = field(default_factory=dict)  # dotted key -> value that restores it; {} = fixed
    pending: str = ""  # what is not wired yet (said in the table until the trainers read the key)

    def restores(self, flat: dict[str, Any]) -> bool:
        return all(matches(v, flat.get(k)) for k, v in self.authors.items())


def matches(expected: Any, value: Any) -> bool:
    if isinstance(expected, AnyPath):
        return expected.matches(value)
    if isinstance(expected, float) and isinstance(value, (int, float)):
        return abs(value - expected) <= 1e-12 * max(1.0, abs(expected))
    return value == expected


DEVIATIONS: list[Deviation] = [
    Deviation("novel-view angles", "GCL code",
              "their angle draw never reaches 315 degrees (an off-by-one); genreid draws all seven rotations",
              {"train.angles": ANGLES_AUTHORS, "pretrain.angles": ANGLES_AUTHORS}),
    Deviation("negatives of the third memory term", "GCL code",
              "their code scores term 3's negatives with f_nv although the term compares f; genreid uses f, "
              "the paper's intent", {"train.term3_negatives": "f_nv"}),
    Deviation("anchor as its own positive", "GCL code",
              "their positive draw may return the anchor's own memory slot; genreid draws another slot of the "
              "same cluster", {"train.positive_includes_self": True}),
    Deviation("prototype loss: normalisation and temperature", "GCL+ code",
              "their code scores the raw embedding against raw cluster centres with no temperature; genreid "
              "L2-normalises both and divides by 0.05 (the released GCL+ code does not run, so its intent is open)",
              {"train.gcl_plus.proto_normalise": False, "train.gcl_plus.proto_temperature": 1.0}),
    Deviation("prototype-loss criterion and weight", "GCL+ code",
              "never defined in the released code (it does not run); genreid uses cross-entropy with "
              "train.gcl_plus.id_w 1.0: no authors' value exists"),
    Deviation("stage-3 G/D learning rate", "GCL code",
              "their stage 3 rebuilds the G/D scheduler at stage 2's last iteration: under their PyTorch 1.2 the "
              "LR becomes 1e-5 and never steps again, under PyTorch >= 1.4 it stays 1e-4 and drops at epoch 10; "
              "genreid makes it explicit (1e-4, dropping with E_id at step_epoch)",
              {"train.stage3_lr_g": 1e-5, "train.gd_lr_step": False}),
    Deviation("stage-3 optimiser state", "GCL code",
              "their stage 3 resumes stage 2's Adam state of G/D (optimizer.pt); genreid does the same by "
              "default (generator.pt carries the states); fresh optimisers are an option",
              {"train.gan_optimizer": "resume"}),
    Deviation("model selection", "GCL code",
              "they keep the epoch with the best test-set mAP; genreid selects on a validation split carved "
              "from training identities and never on the test set. Restoring their training data (every "
              "training image) with the last epoch is the closest honest setting",
              {"data.val_fraction": 0.0, "train.selection": "last"}),
    Deviation("stage-1 method", "GCL code",
              "their stage 1 is a JVTC checkpoint from their drive; genreid trains Cluster-Contrast (the "
              "strongest public baseline) and reports it as the baseline row. Import their file with "
              "`genreid import-authors` to start stages 2-3 from the papers' starting point",
              {"warmup.import_encoder": AnyPath("the imported encoder.pt",
                                                "data/models/authors/market1501/encoder.pt")}),
    Deviation("E_id pooling in stage 3", "GCL code",
              "their ft_net average-pools; genreid's Cluster-Contrast warm-up trains with GeM and stage 3 keeps "
              "that pooling by default (stage 2 uses only the stripe code, which is average-pooled in both)",
              {"train.pooling": "avg"}),
    Deviation("body model", "GCL code",
              "their meshes come from HMR with the SMPL body; SMPL is licensed and never downloaded, so the "
              "default is a procedural stand-in body",
              {"mesh.body_model": AnyPath("the SMPL model file", "data/models/smpl/SMPL_NEUTRAL.pkl")}),
    Deviation("mesh estimator", "GCL code",
              "their meshes come from HMR; its checkpoint cannot be downloaded here, so the real-data recipes "
              "use `auto`: HMR when mesh.hmr_checkpoint exists, else MediaPipe pose landmarks with the body "
              "model fitted to them (results/<ds>/meshes/accuracy.json measures both against SynthReID's "
              "ground truth); SynthReID estimates them the same way (its ground-truth bodies, the oracle, are "
              "one key away)",
              {"mesh.estimator": "hmr"}),
    Deviation("appearance-code standardisation", "not in the papers",
              "a briefly trained encoder's codes share a large offset that G learns to ignore; the CPU recipe "
              "standardises them with fixed training statistics", {"pretrain.code_norm": False}),
    Deviation("reconstruction warm start", "not in the papers",
              "short CPU schedules start G with reconstruction-only iterations", {"pretrain.recon_warmup_iters": 0}),
    Deviation("AdaIN scale offset", "not in the papers",
              "an offset of 1 starts AdaIN at identity and learns faster on short schedules; the authors use "
              "the raw MLP scales", {"pretrain.adain_scale_offset": 0.0}),
    Deviation("appearance code to AdaIN MLPs", "GCL code",
              "the authors' channel-major flattening feeds MLP k channels kC/4..(k+1)C/4 of all stripes; "
              "code_split: stripes (MLP k gets stripe k) is kept as an option",
              {"model.generator.code_split": "channels"}),
    Deviation("E_str ASPP activations", "GCL code",
              "no activation after the ASPP's 1x1 branch, dilated convolutions and fuse in their code; LeakyReLU "
              "after each is kept as an option", {"model.generator.aspp_activation": "none"}),
    Deviation("decoder layer norm", "GCL code",
              "their layer norm divides by the unbiased std + 1e-5 with gamma ~ U(0,1); GroupNorm(1, C) "
              "is kept as an option", {"model.generator.decoder_norm": "authors_ln"}),
    Deviation("camera-centred clustering", "not in the papers",
              "encoders trained from scratch group images by camera; the CPU recipe centres features per camera "
              "before the Jaccard distance",
              {"train.gcl.cluster.camera_norm": False, "train.gcl_plus.cluster.camera_norm": False,
               "warmup.cluster.camera_norm": False}),
    Deviation("stage-1 augmentation", "Cluster-Contrast",
              "Cluster-Contrast flips, pads + crops and erases its training batches; genreid's default keeps "
              "them off (GCL's only views are generated ones)", {"warmup.augment": True}),
    Deviation("stage-1 sampler", "Cluster-Contrast",
              "Cluster-Contrast draws per pass one group per identity (an anchor plus 15 more from other cameras "
              "where possible); genreid's default does the same, its earlier round-robin PK sampler is an option",
              {"warmup.sampler": "multi_gallery"}),
    Deviation("stage-2 checkpoint interval", "GCL code",
              "they snapshot every 5000 iterations and stage 3 resumes the last snapshot, losing the tail of "
              "stage 2; genreid checkpoints every 500 and stage 3 always starts from the final weights (not "
              "switchable: only the interval is restored)", {"pretrain.checkpoint_every_iters": 5000}),
    Deviation("strict checkpoint loading", "GCL code",
              "they load with strict=False, so wrong keys silently keep ImageNet weights; genreid always loads "
              "strictly and lists mismatches. Not switchable: a silent partial load is a bug, not a setting"),
    Deviation("memory negatives with replacement", "GCL code",
              "their negative draw crashes when a cluster leaves fewer than K other slots; genreid then draws with "
              "replacement; wherever their code runs both draw K distinct negatives. Not switchable: a crash is "
              "not a setting"),
    Deviation("cudnn.benchmark", "GCL code",
              "they set the seeds, then turn cudnn.benchmark on (non-deterministic kernels). The real-dataset "
              "recipes (base.yaml) do the same for speed; the schema default and the SynthReID recipes keep it off "
              "with deterministic algorithms so runs repeat bit for bit", {"runtime.deterministic": False}),
]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def schema_defaults() -> dict[str, Any]:
    return flatten(GenreidConfig().model_dump(mode="json"))


def kept(resolved: dict[str, Any]) -> list[Deviation]:
    """Switchable rows a resolved params tree does not restore (the differences a run keeps)."""
    flat = flatten(resolved)
    return [d for d in DEVIATIONS if d.authors and not d.restores(flat)]


def unknown_keys() -> list[str]:
    """Keys named by the table that the schema does not have (a renamed key must update the table)."""
    known = schema_defaults()
    return [k for d in DEVIATIONS for k in d.authors if k not in known]


def _value(v: Any) -> str:
    return str(v) if isinstance(v, AnyPath) else f"`{json.dumps(v)}`"


def deviations_markdown(cpu_recipe: dict[str, Any] | None = None) -> str:
    """The table: what differs, from whom, the key = value restoring the authors' behaviour, genreid's
    schema default (and the CPU recipe's value where it differs), and why."""
    defaults = schema_defaults()
    cpu = flatten(cpu_recipe) if cpu_recipe else {}
    lines = ["## Deviations from the authors' code", "",
             "Generated from `genreid/config/deviations.py`. `params/ablations/authors_code.yaml` sets every "
             "switchable row to the authors' value (a test checks it); `genreid recipe deviations <recipe>` "
             "lists the rows a recipe keeps.", "",
             "| difference | from | authors' behaviour (key: value) | genreid default | why |", "|---|---|---|---|---|"]
    for d in DEVIATIONS:
        if d.authors:
            restore = "<br>".join(f"`{k}`: {_value(v)}" for k, v in d.authors.items())
            ours = []
            for k in d.authors:
                text = f"`{json.dumps(defaults.get(k))}`"
                if k in cpu and cpu[k] != defaults.get(k):
                    text += f" (synthetic_cpu.yaml: `{json.dumps(cpu[k])}`)"
                ours.append(text)
            genreid = "<br>".join(ours)
        else:
            restore, genreid = ("not yet switchable" if d.pending else "not switchable"), "-"
        why = d.why + (f" **Pending: {d.pending}.**" if d.pending else "")
        lines.append(f"| {d.topic} | {d.source} | {restore} | {genreid} | {why} |")
    return "\n".join(lines) + "\n"


"""The whole params tree. Each section lives in its own module; this file assembles them.

Defaults are the paper's real-dataset settings (docs/method.md); recipes under ``params/``
override only what differs, and ``params.yaml`` is the fully resolved tree DVC tracks.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from genreid.config.base import StrictModel
from genreid.config.sections.data import DataConfig
from genreid.config.sections.evaluation import EvalConfig
from genreid.config.sections.gan import PretrainConfig, TrainConfig
from genreid.config.sections.mesh import MeshConfig
from genreid.config.sections.model import ModelConfig
from genreid.config.sections.report import ReportConfig
from genreid.config.sections.source import SourceConfig
from genreid.config.sections.views import TrueViewsConfig
from genreid.config.sections.warmup import WarmupConfig

DatasetName = Literal["market1501", "dukemtmc", "msmt17", "synthetic", "synthetic_b"]

# Keys of earlier versions: each names its replacement, so an old recipe fails with the fix.
RENAMED_KEYS: dict[str, str] = {
    "train.gcl_rho": "train.gcl.cluster.rho (GCL's eps rule is train.gcl.cluster.eps_rule: rho)",
    "train.gcl_plus_eps": "train.gcl_plus.cluster.eps (with train.gcl_plus.cluster.eps_rule: fixed)",
    "train.k1": "train.gcl.cluster.k1 and train.gcl_plus.cluster.k1",
    "train.k2": "train.gcl.cluster.k2 and train.gcl_plus.cluster.k2",
    "train.min_samples": "train.gcl.cluster.min_samples and train.gcl_plus.cluster.min_samples",
    "train.camera_norm": "train.gcl.cluster.camera_norm and train.gcl_plus.cluster.camera_norm",
    "train.sheet_rows": "pretrain.sheet_rows (stage 3 draws no sheet; remove the key)",
    "warmup.checkpoint_every": "warmup.checkpoint_every_iters (checkpoints are by iteration; every epoch end "
                               "always has one)",
}


def renamed_key_errors(tree: object) -> list[str]:
    """Messages for every key of ``tree`` that an earlier version used (see RENAMED_KEYS)."""
    found = []
    for dotted, new in RENAMED_KEYS.items():
        node = tree
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            found.append(f"{dotted} was replaced by {new}")
    if isinstance(tree, dict) and isinstance(tree.get("warmup"), dict) \
            and isinstance(tree["warmup"].get("cluster"), dict) and "eps" in tree["warmup"]["cluster"] \
            and tree["warmup"]["cluster"]["eps"] is None:
        found.append("warmup.cluster.eps: null (the rho rule) was replaced by warmup.cluster.eps_rule: rho")
    return found


class RuntimeConfig(StrictModel):
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when available, else CPU")
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes; 0 = load in the main process")
    num_threads: int = Field(0, ge=0, le=512, description="torch CPU threads; 0 = torch default")
    deterministic: bool = Field(True, description=(
        "true: deterministic torch algorithms, cudnn.benchmark off (bit-reproducible); false: the fast mode, "
        "cudnn.benchmark on and no deterministic algorithms (the authors' setting)"))
    amp: Literal["off", "bf16", "fp16"] = Field(
        "off", description="mixed precision: bf16 (CUDA and CPU), fp16 with a gradient scaler (CUDA only), off = fp32")
    channels_last: bool = Field(False, description="channels-last memory format for the four networks and their "
                                                   "inputs (faster convolutions on recent GPUs)")
    activation_checkpointing: bool = Field(False, description="recompute the networks' conv blocks in backward "
                                                              "instead of storing them: same results, less memory, "
                                                              "about a third more time")
    cpu_isa_cap: Literal["off", "avx2", "sse41"] = Field(
        "off", description=("cap the instruction set of torch's CPU libraries (oneDNN, ATen kernels, MKL in its "
                            "reproducible mode) at process start, so CPUs of one type that reach the cap give the "
                            "same bits: avx2, sse41 (slower), off = whatever the CPU offers (docs/reproducibility.md)"))
    log_every: int = Field(50, ge=1, le=1_000_000, description=(
        "a progress line every N training iterations (each loss as its running mean over the epoch); "
        "every epoch and every stage also end with a summary line"))
    nproc_per_node: int = Field(1, ge=1, le=64, description=(
        "training processes per machine, one per GPU; above 1 every training stage (warmup, source, pretrain, "
        "train) starts itself under torchrun, so `dvc repro` trains on several GPUs and records the outputs"))
    nnodes: int = Field(1, ge=1, le=1024, description=(
        "machines taking part (torchrun --nnodes); each runs `dvc repro` with its own runtime.node_rank"))
    node_rank: int = Field(0, ge=0, le=1023, description="this machine's rank, 0 to nnodes - 1 (torchrun --node_rank)")
    master_addr: str = Field("127.0.0.1", min_length=1, description=(
        "address of the node_rank 0 machine, reachable from all (torchrun --master_addr; several nodes only)"))
    master_port: int = Field(29500, ge=1, le=65535, description=(
        "free port on that machine (torchrun --master_port; several nodes only)"))

    @model_validator(mode="after")
    def _node_rank_in_range(self) -> RuntimeConfig:
        if self.node_rank >= self.nnodes:
            raise ValueError(f"runtime.node_rank {self.node_rank} must be below runtime.nnodes {self.nnodes}")
        return self


# Smallest image (height, width) with CPU bf16 autocast: every stage runs finite at 64x32 (the dry profile of
# the amp tests); 32x16 (the tiny recipe) gives NaN at the first warm-up iteration on oneDNN's bf16 kernels.
BF16_CPU_MIN_IMAGE: tuple[int, int] = (64, 32)


class UdaLists(StrictModel):
    """What dvc.yaml's stages loop over, derived from ``datasets`` and ``warmup.source_dataset`` when a
    recipe is applied (DVC cannot compute lists); never edit: `genreid recipe apply` rewrites it."""

    sources: list[str] = Field(default_factory=list, description="the labelled source ([] = fully unsupervised): "
                                                                 "prepare_source, source, evaluate_source")
    targets: dict[str, str] = Field(default_factory=dict, description="target dataset -> source: warmup_uda, "
                                                                      "evaluate_direct")
    unsupervised: list[str] = Field(default_factory=list, description="datasets warmed up without a source "
                                                                      "(the warmup stage)")
    imported: dict[str, str] = Field(default_factory=dict, description=(
        "dataset -> warmup.import_encoder: the warmup_import stage, which depends on the imported file, so "
        "replacing its content reruns stage 1 and everything after it"))


def uda_lists(datasets: list[str], source: str | None, imported: str | None = None) -> UdaLists:
    """The derived ``uda`` section for ``datasets``, ``warmup.source_dataset`` and ``warmup.import_encoder``."""
    if imported:
        return UdaLists(sources=[], targets={}, unsupervised=[], imported={d: imported for d in datasets})
    if source is None:
        return UdaLists(sources=[], targets={}, unsupervised=list(datasets))
    return UdaLists(sources=[source], targets={d: source for d in datasets}, unsupervised=[])


class GenreidConfig(StrictModel):
    seed: int = Field(1, ge=0, description="the authors' seed is 1")
    datasets: list[DatasetName] = Field(default_factory=lambda: ["synthetic"], min_length=1,
                                        description="datasets the pipeline runs on (dvc.yaml foreach)")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    true_views: TrueViewsConfig = Field(default_factory=TrueViewsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)
    source: SourceConfig = Field(default_factory=SourceConfig, description="UDA: supervised source pre-training")
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    uda: UdaLists | None = Field(None, description="derived by `genreid recipe apply` (do not edit): the UDA "
                                                   "stages' and the imported warm-up's foreach lists")

    @model_validator(mode="before")
    @classmethod
    def _no_renamed_keys(cls, data: object) -> object:
        errors = renamed_key_errors(data)
        if errors:
            raise ValueError("; ".join(errors))
        return data

    @field_validator("datasets")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"datasets must not repeat a name, got {v}")
        return v

    @model_validator(mode="after")
    def _uda_consistent(self) -> GenreidConfig:
        """The source is not a target, ``direct`` needs a source, and the derived lists match."""
        src = self.warmup.source_dataset
        if src is not None and src in self.datasets:
            raise ValueError(f"warmup.source_dataset {src!r} is also listed in datasets {self.datasets}: the "
                             "source is labelled and pre-trained on, datasets are the unlabelled targets; "
                             "remove it from one of them")
        if src is not None and self.warmup.import_encoder:
            raise ValueError("warmup.source_dataset and warmup.import_encoder both set the stage-1 encoder; "
                             "set one of them to null")
        if src is None and "direct" in self.eval.methods:
            raise ValueError("eval.methods lists 'direct' (the source encoder on the target) but "
                             "warmup.source_dataset is null; remove 'direct' or set a source")
        expected = uda_lists(self.datasets, src, self.warmup.import_encoder)
        if self.uda is None:
            object.__setattr__(self, "uda", expected)
        elif self.uda != expected:
            raise ValueError(f"uda (derived) is {self.uda.model_dump()} but datasets {self.datasets} and "
                             f"warmup.source_dataset {src!r} (warmup.import_encoder "
                             f"{self.warmup.import_encoder!r}) give {expected.model_dump()}; rewrite params.yaml "
                             "with `genreid recipe apply <recipe>` (or delete the uda section)")
        return self

    @model_validator(mode="after")
    def _selection_needs_a_validation_split(self) -> GenreidConfig:
        """Selecting on validation mAP without a validation split would silently keep the last epoch."""
        if self.train.selection == "val_map" and self.data.val_fraction == 0:
            raise ValueError("train.selection is 'val_map' but data.val_fraction is 0, so there is no validation "
                             "split to select on (stage 3 would silently keep the last epoch); set train.selection: "
                             "last (the authors' choice) or data.val_fraction above 0")
        return self

    @model_validator(mode="after")
    def _bf16_needs_large_enough_images_on_cpu(self) -> GenreidConfig:
        """oneDNN's CPU bf16 kernels give NaN on very small images: no learning-rate setting helps, so the
        combination is refused here instead of diverging at the first warm-up iteration."""
        min_h, min_w = BF16_CPU_MIN_IMAGE
        small = self.data.height < min_h or self.data.width < min_w
        if self.runtime.amp == "bf16" and self.runtime.device != "cuda" and small:
            raise ValueError(
                f"runtime.amp: bf16 with {self.data.height}x{self.data.width} images (data.height x data.width) on "
                f"the CPU (runtime.device: {self.runtime.device}): oneDNN's bf16 kernels give NaN at the first "
                f"warm-up iteration below {min_h}x{min_w}, whatever the learning rate; set runtime.amp: off, "
                f"images of at least {min_h}x{min_w}, or runtime.device: cuda")
        return self

    @model_validator(mode="after")
    def _real_datasets_need_smpl(self) -> GenreidConfig:
        """The papers fit SMPL; a procedural body on real images is allowed only when asked for by name."""
        real = [d for d in self.datasets if not d.startswith("synthetic")]
        if real and self.mesh.body_model == "procedural" and not self.mesh.allow_procedural_body:
            raise ValueError(
                f"mesh.body_model is 'procedural' for the real dataset(s) {real}: the papers render SMPL meshes; "
                "set mesh.body_model to the SMPL model file (data/models/smpl/SMPL_NEUTRAL.pkl) or, knowingly, "
                "mesh.allow_procedural_body: true (marked as a deviation in provenance and the report)")
        return self

    @model_validator(mode="after")
    def _oracle_body_matches_synthesis(self) -> GenreidConfig:
        """Oracle meshes re-pose SynthReID's ground-truth SMPL parameters: with another body model the
        renders would no longer line up with the people in the images."""
        for ds in ("synthetic", "synthetic_b"):
            body = getattr(self.data, ds).body_model
            oracle = self.mesh.estimator in ("oracle", "auto") or "oracle" in self.mesh.also_measure
            if ds in self.datasets and oracle and self.mesh.body_model != body:
                raise ValueError(
                    f"mesh.body_model ({self.mesh.body_model!r}) must equal data.{ds}.body_model "
                    f"({body!r}) when the oracle is used or measured (mesh.estimator {self.mesh.estimator!r}, "
                    f"mesh.also_measure {self.mesh.also_measure}): oracle meshes re-pose the ground truth "
                    "SynthReID was rendered with; set both to the same value")
        return self

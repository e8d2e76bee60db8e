"""The paragraph that opens results/README.md for SynthReID: the scale it runs the method at against
the papers' (image size, backbone, schedules, meshes), so that nobody reads a CPU-scale verdict as a
test of the papers' numbers."""

from __future__ import annotations

from genreid.config import GenreidConfig

# from the repository root; results/README.md links it from one level down
DOSE_RESPONSE_DOC = "docs/usage.md#the-dose-response-experiment"


def _backbone(cfg: GenreidConfig) -> str:
    start = "from ImageNet" if cfg.model.pretrained == "imagenet" else "from scratch"
    return f"{cfg.model.backbone.replace('resnet', 'ResNet-')} {start}, {cfg.model.embedding_dim}-d features"


def regime_lines(cfg: GenreidConfig) -> list[str]:
    """One short paragraph when SynthReID is among the datasets; none otherwise. The papers' values are
    the schema's defaults (the authors' settings, which the real-data recipes keep)."""
    if not any(ds.startswith("synthetic") for ds in cfg.datasets):
        return []
    paper = GenreidConfig()
    pre = cfg.pretrain
    recon = (f", the first {pre.recon_warmup_iters} iterations reconstruction-only" if pre.recon_warmup_iters
             else "")
    return [
        f"**Regime.** SynthReID runs the method at a CPU scale, not the papers': {cfg.data.height}x"
        f"{cfg.data.width} images (papers {paper.data.height}x{paper.data.width}); E_id a {_backbone(cfg)} (papers: "
        f"{_backbone(paper)}); stage 1 a {cfg.warmup.epochs}-epoch Cluster-Contrast warm-up (the authors load a "
        f"JVTC encoder); stage 2 {pre.epochs} epochs{recon} (papers {paper.pretrain.epochs}, every loss from "
        f"the start); stage 3 {cfg.train.epochs} epochs (papers {paper.train.epochs}); meshes from the "
        f"`{cfg.mesh.estimator}` estimator (papers: HMR). The verdicts below hold for this regime; they are not "
        "a test of the papers' numbers, which need the real datasets. Whether a stronger generator, a longer "
        "stage 3 or an appearance code detached from the generator's gradients changes them is what the "
        "dose-response experiment measures ([its table](experiments/dose_response/table.md); "
        f"[how to run it](../{DOSE_RESPONSE_DOC})).",
        "",
    ]

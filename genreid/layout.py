"""Where the pipeline's files live: the one definition the stage scripts read (``dvc.yaml`` spells the
same paths for DVC, and a test checks that the two agree).

Per dataset ``<ds>`` and run ``<run>`` (``baseline`` = the warm-up, ``source``, ``pretrain``, a
stage-3 method, or an evaluated encoder):

- ``<data.root>/prepared/<ds>/``: the prepared images and manifests;
- ``<data.root>/meshes/<ds>/``: the mesh renders;
- ``models/<ds>/<run>/``: ``encoder.pt`` (or ``generator.pt`` for ``pretrain``) and ``ckpt/``;
- ``results/<ds>/<run>/``: metrics, curves and pictures; a trainer's log under ``train/``.

Paths are relative to the repository root, where DVC runs every stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genreid.registry import PRETRAIN_RUN

MODELS = Path("models")
RESULTS = Path("results")
BASELINE_RUN = "baseline"  # the warm-up encoder every later stage starts from


@dataclass(frozen=True)
class Layout:
    """The files of one dataset under ``data_root`` (``data.root``)."""

    data_root: Path
    dataset: str

    @property
    def prepared(self) -> Path:
        return self.data_root / "prepared" / self.dataset

    @property
    def ground_truth(self) -> Path:
        """SynthReID's per-image ground truth (SMPL, joints, masks), copied beside the prepared manifests."""
        return self.prepared / "ground_truth.npz"

    @property
    def meshes(self) -> Path:
        return self.data_root / "meshes" / self.dataset

    @property
    def true_views(self) -> Path:
        """SynthReID's true novel views at the drawn angles (stage ``true_views``)."""
        return self.data_root / "true_views" / self.dataset

    def model_dir(self, run: str) -> Path:
        return MODELS / self.dataset / run

    def checkpoints(self, run: str) -> Path:
        """A trainer's resumable checkpoints (kept across reruns of the same settings)."""
        return self.model_dir(run) / "ckpt"

    def results_dir(self, run: str) -> Path:
        return RESULTS / self.dataset / run

    def train_log(self, run: str) -> Path:
        """A trainer's dvclive log, summary and resolved config."""
        return self.results_dir(run) / "train"

    def encoder(self, run: str) -> Path:
        return self.model_dir(run) / "encoder.pt"

    def authors_export(self, export_dir: str | Path) -> Path:
        """The meshes in the authors' folder layout (``mesh.export_dir``)."""
        return Path(export_dir) / self.dataset

    @property
    def generator(self) -> Path:
        """Stage 2's output, the generator stage 3 starts from."""
        return self.model_dir(PRETRAIN_RUN) / "generator.pt"


def layout(data_root: str | Path, dataset: str) -> Layout:
    return Layout(Path(data_root), dataset)

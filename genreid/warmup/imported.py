"""Stage 1 from the authors' weights: ``warmup.import_encoder`` names an ``encoder.pt`` that
``genreid import-authors`` converted from their stage-1 file, and the warm-up stage uses it instead of
training, so stages 2-3 start exactly where the papers' did. The run is marked everywhere it shows:
``selected_on: authors_weights`` in encoder.pt and summary.json, and the report's selection table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genreid.config.sections.model import ModelConfig
from genreid.errors import ConfigError
from genreid.models.authors_import import sha256
from genreid.models.id_encoder import load_encoder, save_encoder
from genreid.utils.atomic import write_json
from genreid.utils.provenance import run_record

IMPORTED = "authors_weights"


ARCH_CHECKED = ("backbone", "embedding_dim", "last_stride", "stripes")


def arch_mismatch(arch: dict[str, Any], model: ModelConfig) -> list[str]:
    """``model.<key>: recipe X, file Y`` for each build argument the stages after stage 1 rely on (pooling is
    left out: stage 3 re-pools, and the import's average pooling is the authors')."""
    return [f"model.{key}: recipe {getattr(model, key)!r}, file {arch.get(key)!r}"
            for key in ARCH_CHECKED if arch.get(key) != getattr(model, key)]


def use_imported_encoder(path: str | Path, model: ModelConfig, *, seed: int, model_dir: Path,
                         results_dir: Path) -> dict[str, Any]:
    """Validate the imported encoder (weights-only, strict, finite, the recipe's architecture) and write it
    as the stage's output; nothing is written when any check fails."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"warmup.import_encoder points to {path}, which does not exist",
                          "run `genreid import-authors --id <their stage-1 file> --out <dir>` and point the key at "
                          "<dir>/encoder.pt, or set warmup.import_encoder: null to train stage 1")
    encoder, extra = load_encoder(path)
    mismatch = arch_mismatch(encoder.arch, model)
    if mismatch:
        raise ConfigError(f"warmup.import_encoder {path} does not match the recipe's model: {'; '.join(mismatch)}",
                          "set those model keys to the file's values in the recipe (the authors' stage 1 is a "
                          "ResNet-50 with a 2048-d feature), or import the file that was trained with them")
    bad = [k for k, v in encoder.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise ConfigError(f"warmup.import_encoder {path} holds NaN or infinite weights in {bad[:5]}"
                          + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""),
                          "import an intact file with `genreid import-authors` (which refuses non-finite weights)")
    record = {**extra, "method": "authors_import", "selected_on": IMPORTED, "selected_epoch": None,
              "last_epoch": None, "imported_from": str(path), "imported_sha256": sha256(path),
              "seed": seed}
    save_encoder(encoder, Path(model_dir) / "encoder.pt", record)
    summary = {**record, "resumed": False, "history": [], "provenance": run_record(seed, "cpu")}
    write_json(Path(results_dir) / "train" / "summary.json", summary)
    return summary

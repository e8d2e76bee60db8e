"""Stage 1 from the authors' weights: ``warmup.import_encoder`` names an ``encoder.pt`` that
``genreid import-authors`` converted from their stage-1 file, and the warm-up stage uses it instead of
training, so stages 2-3 start exactly where the papers' did. The run is marked everywhere it shows:
``selected_on: authors_weights`` in encoder.pt and summary.json, and the report's selection table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genreid.errors import ConfigError
from genreid.models.authors_import import sha256
from genreid.models.id_encoder import load_encoder, save_encoder
from genreid.utils.atomic import write_json
from genreid.utils.provenance import run_record

IMPORTED = "authors_weights"


def use_imported_encoder(path: str | Path, *, seed: int, model_dir: Path, results_dir: Path) -> dict[str, Any]:
    """Validate the imported encoder (weights-only, strict) and write it as the stage's output."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"warmup.import_encoder points to {path}, which does not exist",
                          "run `genreid import-authors --id <their stage-1 file> --out <dir>` and point the key at "
                          "<dir>/encoder.pt, or set warmup.import_encoder: null to train stage 1")
    encoder, extra = load_encoder(path)
    record = {**extra, "method": "authors_import", "selected_on": IMPORTED, "selected_epoch": None,
              "last_epoch": None, "imported_from": str(path), "imported_sha256": sha256(path),
              "seed": seed}
    save_encoder(encoder, Path(model_dir) / "encoder.pt", record)
    summary = {**record, "resumed": False, "history": [], "provenance": run_record(seed, "cpu")}
    write_json(Path(results_dir) / "train" / "summary.json", summary)
    return summary

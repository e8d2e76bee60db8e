"""UDA stage 1 starts from the source-trained encoder: the papers' source enters only here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genreid.errors import CheckpointError
from genreid.models.id_encoder import IdEncoder, load_encoder
from genreid.models.state import load_state_strict


def init_from_source(encoder: IdEncoder, path: str | Path) -> dict[str, Any]:
    """Load the source-trained encoder at ``path`` into ``encoder`` strictly (UDA stage 1 starts from it);
    returns the file's record. A different architecture is an error naming both, not a partial load."""
    source, record = load_encoder(path)
    mine = {k: v for k, v in encoder.arch.items() if k != "pretrained"}
    theirs = {k: v for k, v in source.arch.items() if k != "pretrained"}
    if mine != theirs:
        diff = {k: (theirs.get(k), mine.get(k)) for k in mine if mine.get(k) != theirs.get(k)}
        raise CheckpointError(f"{path}: the source encoder's architecture differs from the warm-up's "
                              f"(key: (source, warm-up)) {diff}",
                              "rerun the source stage with the same model.* and warmup.pooling (`dvc repro`)")
    load_state_strict(encoder, source.state_dict(), str(path))
    return record

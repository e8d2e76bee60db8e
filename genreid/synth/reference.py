"""The content hash SynthReID must have for the settings the repository ships, and the check.

The generator's maths gives the same bytes on every machine (:mod:`genreid.render.exact`), and
the JPEG encoder's output is fixed by its version (Pillow, pinned in ``requirements.lock``,
with its bundled libjpeg-turbo). So for these settings every user generates exactly the data
the committed results were computed on; ``prepare`` hashes what it generated and compares.

A difference means the generator code or the JPEG encoder differs from the one that made the
reference (an edited ``genreid/synth``, ``genreid/render`` or ``genreid/body``; another Pillow),
not the CPU: results computed on that data are not the committed benchmark's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Each entry: the generator's settings (``summary.json``'s ``params`` plus ``generator_version``),
# the content hash of the folder it writes (``genreid.synth.generator.content_hash``) and the
# encoder that made it. Regenerate with `python -m genreid.synth.reference` after a deliberate
# change of the generator (and bump SYNTHREID_GENERATOR_VERSION in genreid/utils/versions.py).
_DEFAULT = {"generator_version": 2, "seed": 0, "num_train_ids": 64, "num_test_ids": 64, "num_cameras": 6,
            "cameras_per_id": 4, "images_per_camera": 3, "num_distractors": 20, "height": 128,
            "body_model": "procedural", "occlusion_prob": 0.2, "blur_max": 1.0, "colour_cast": 0.1, "palette_size": 8}
_ENCODER = {"pillow": "13.0.0", "libjpeg_turbo": "3.2.0"}
REFERENCES: tuple[dict[str, Any], ...] = (
    {"settings": _DEFAULT,  # data.synthetic: the default benchmark
     "content_sha256": "3df1e6ce5b91bf621fb489d50d2fe635290470d2e08374994b1b307b21197ec5", "encoder": _ENCODER},
    {"settings": {**_DEFAULT, "seed": 1, "domain": "b"},  # data.synthetic_b: the UDA demo's target
     "content_sha256": "0910bab131551c1b9ca1b387170627b94aefbe3335f723aca898f34242e0d8ee", "encoder": _ENCODER},
)


@dataclass(frozen=True)
class ReferenceCheck:
    """``status``: ``match``, ``differs`` or ``none`` (no reference for these settings)."""

    status: str
    message: str


def find_reference(settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reference entry for exactly these settings, if the repository has one."""
    for entry in REFERENCES:
        if entry["settings"] == dict(settings):
            return entry
    return None


def check_reference(settings: Mapping[str, Any], digest: str, encoder: Mapping[str, str]) -> ReferenceCheck:
    """Compare a generated dataset's content hash with the committed reference for its settings."""
    entry = find_reference(settings)
    if entry is None:
        return ReferenceCheck("none", f"SynthReID content sha256 {digest} (no committed reference for these "
                                      "settings: non-default settings are not checked)")
    if entry["content_sha256"] == digest:
        return ReferenceCheck("match", f"SynthReID content sha256 {digest} matches the committed reference: "
                                       "byte-identical to the data the committed results used")
    causes = []
    if dict(encoder) != entry["encoder"]:
        causes.append(f"the JPEG encoder differs (here {_fmt(encoder)}, reference {_fmt(entry['encoder'])}; "
                      "install the versions in requirements.lock)")
    causes.append("the generator code differs from the committed one (local edits under genreid/synth, "
                  "genreid/render, genreid/body or genreid/utils/exactmath.py)")
    return ReferenceCheck(
        "differs",
        f"SynthReID content sha256 {digest} differs from the committed reference {entry['content_sha256']} for "
        f"these settings. The generator gives the same bytes on every CPU, so the likely cause is: "
        f"{'; or '.join(causes)}. Training on this data works, but its results are not comparable "
        "byte-for-byte with the committed ones (docs/reproducibility.md).")


def check_generated(root: str | os.PathLike, summary: Mapping[str, Any]) -> dict[str, str]:
    """Hash a generated tree (``summary``: what the generator returned) and compare it with the
    committed reference for its settings; logs the verdict (a difference as a warning that says what
    it means: the data is usable, but it is not the benchmark's). Returns the hash and the status."""
    from genreid.synth.generator import content_hash, jpeg_encoder

    digest = content_hash(root)
    settings = {"generator_version": summary["generator_version"], **summary["params"]}
    check = check_reference(settings, digest, jpeg_encoder())
    (log.warning if check.status == "differs" else log.info)("%s", check.message)
    return {"content_sha256": digest, "reference": check.status}


def _fmt(encoder: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(encoder.items()))


def _main() -> None:
    """Print the reference entries for the datasets in params.yaml (generates each, about a minute)."""
    import json
    import tempfile
    from pathlib import Path

    import yaml

    from genreid.config.sections.data import synth_settings
    from genreid.synth.generator import GENERATOR_VERSION, content_hash, generate_synthreid, jpeg_encoder

    cfg = yaml.safe_load(Path("params.yaml").read_text())
    for name in ("synthetic", "synthetic_b"):
        params = cfg["data"].get(name)
        if params is None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            summary = generate_synthreid(Path(tmp) / "images", synth_settings(name, params), progress=False)
            entry = {"settings": {"generator_version": GENERATOR_VERSION, **summary["params"]},
                     "content_sha256": content_hash(Path(tmp) / "images"), "encoder": jpeg_encoder()}
        print(json.dumps(entry, indent=4))


if __name__ == "__main__":
    _main()

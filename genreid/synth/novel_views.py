"""Ground-truth novel views: SynthReID's photo of a person, re-rendered turned about the vertical axis.

SynthReID knows everything it drew: identity appearance, body, pose, camera framing, background and
camera effects all come from seeded random streams (:mod:`genreid.synth.generator`). Re-running the
generator's renderer for an image with the person turned by an angle gives the image the mesh stage's
structure render at that angle stands for: same person, same framing, same background and camera,
turned in place about the pelvis exactly as the structure render turns the body
(:func:`genreid.render.camera.rotate_about_vertical`, so the silhouettes overlay), and without the
occluder the photo may have. At angle 0 the view is the photo itself minus its occluder: through the
camera's JPEG it gives the stored file's bytes for an unoccluded image.

These are the targets of the view-fidelity metrics (:mod:`genreid.gan.fidelity`) and the positive
views of the ``oracle_views`` arm. Real datasets have none: :func:`render_true_views` raises a
``DataError`` there.

The stored form and its reader live in :mod:`genreid.data.true_views`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from genreid.data.true_views import TrueViews, write_absent, write_true_views
from genreid.errors import DataError

GENERATOR_SUMMARY = Path("images") / "summary.json"  # the generator's own summary inside a prepared folder
GROUND_TRUTH = "ground_truth.npz"


def generator_summary(prepared_dir: str | os.PathLike) -> dict[str, Any]:
    """The SynthReID generator's summary of a prepared folder; a ``DataError`` for any other dataset."""
    prepared = Path(prepared_dir)
    path = prepared / GENERATOR_SUMMARY
    summary: dict[str, Any] = {}
    if path.is_file():
        try:
            summary = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON ({exc})", "rerun `dvc repro prepare@synthetic`") from None
    if summary.get("dataset") != "SynthReID" or not (prepared / GROUND_TRUTH).is_file():
        raise DataError(f"{prepared}: true novel views exist only for SynthReID (no generator summary "
                        f"{path} with its {GROUND_TRUTH}); a real dataset's people cannot be re-rendered",
                        "use a SynthReID dataset (`synthetic`, `synthetic_b`) for view fidelity and the "
                        "oracle_views arm; on real data those outputs are absent by design")
    return summary


def render_true_views(prepared_dir: str | os.PathLike, paths: Sequence[str], angles: Sequence[int], *,
                      batch_size: int = 32) -> TrueViews:
    """The true view of each image (manifest path, relative to the prepared folder) at every angle
    (degrees, the mesh stage's yaw convention), without occluders, pixel-aligned with the structure
    render of that angle. ``batch_size`` only trades memory for speed: each image draws its randomness
    from (dataset seed, image index) alone."""
    from genreid.synth.generator import GENERATOR_VERSION, _Renderer
    from genreid.synth.ground_truth import load_ground_truth
    from genreid.synth.plan import make_plan
    from genreid.synth.scene import make_camera_looks

    prepared = Path(prepared_dir)
    summary = generator_summary(prepared)
    if summary.get("generator_version") != GENERATOR_VERSION:
        raise DataError(f"{prepared / GENERATOR_SUMMARY}: made by SynthReID generator version "
                        f"{summary.get('generator_version')}, this code is version {GENERATOR_VERSION}: its "
                        "re-renders would not match the photos", "regenerate with `dvc repro prepare@synthetic`")
    p = summary["params"]
    table = load_ground_truth(prepared / GROUND_TRUTH)
    shots = make_plan(p["seed"], p["num_train_ids"], p["num_test_ids"], p["num_cameras"], p["cameras_per_id"],
                      p["images_per_camera"], p["num_distractors"])
    rows = table.rows_of(paths)  # ground-truth rows are in plan order: row == the shot's index
    chosen = [shots[int(r)] for r in rows]
    for path, shot in zip(paths, chosen):
        if PurePosixPath(str(path).replace(os.sep, "/")).name != shot.name:
            raise DataError(f"{prepared / GROUND_TRUTH} does not follow the generator's plan at {path}",
                            "regenerate with `dvc repro prepare@synthetic`")
    height = int(p["height"])
    width = height // 2
    looks = make_camera_looks(p["seed"], p["num_cameras"], height, width, p["colour_cast"], p["blur_max"],
                              domain=p.get("domain", "a"))
    n, a = len(chosen), len(angles)
    images = np.zeros((n, a, height, width, 3), np.uint8)
    masks = np.zeros((n, a, height, width), bool)
    backgrounds = np.zeros((n, height, width, 3), np.uint8)
    renderer = _Renderer(p["seed"], height, p["body_model"], p["palette_size"], p["occlusion_prob"], looks)
    for start in range(0, n, batch_size):
        batch = chosen[start:start + batch_size]
        stop = start + len(batch)
        for j, angle in enumerate(angles):
            photos, gt = renderer.batch(batch, turn=math.radians(angle), occluders=False)
            images[start:stop, j] = np.stack(photos)
            masks[start:stop, j] = np.unpackbits(gt["mask_bits"], axis=1, count=height * width).reshape(
                len(batch), height, width).astype(bool)
        backgrounds[start:stop] = gt["background"]
    quality = np.array([looks[s.camera].jpeg_quality for s in chosen], dtype=np.int16)
    return TrueViews(paths=[str(x) for x in paths], angles=[int(x) for x in angles], images=images, masks=masks,
                     backgrounds=backgrounds, jpeg_quality=quality)


def render_splits(prepared_dir: str | os.PathLike, out_dir: str | os.PathLike, tables: dict[str, Any],
                  angles: Sequence[int], batch_size: int = 32) -> dict[str, Any]:
    """The ``true_views`` stage: every split of ``tables`` (manifest frames, absolute paths) into
    ``out_dir``, or for a real dataset ``absent.json``; returns what was done with its timing."""
    import time

    from genreid.synth.generator import GENERATOR_VERSION

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        generator_summary(prepared_dir)
    except DataError as exc:
        write_absent(out, exc.problem, exc.fix)
        return {"available": False, "reason": exc.problem}
    report: dict[str, Any] = {"available": True, "angles": [int(a) for a in angles], "splits": {}}
    for split, table in tables.items():
        start = time.perf_counter()
        root = Path(prepared_dir).absolute()
        paths = [Path(p).relative_to(root).as_posix() if Path(p).is_absolute() else str(p) for p in table["path"]]
        views = render_true_views(prepared_dir, paths, angles, batch_size=batch_size)
        seconds = time.perf_counter() - start
        write_true_views(out, split, views, table["pid"], table["camid"], GENERATOR_VERSION)
        renders = len(views) * len(angles)
        report["splits"][split] = {"images": len(views), "renders": renders, "seconds": round(seconds, 2),
                                   "seconds_per_render": round(seconds / renders, 4) if renders else None}
    return report



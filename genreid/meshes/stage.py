"""The meshes stage with plain arguments: estimate, render every angle, store, check.

Renders are stored at the network input size (``data.height x data.width``): the GAN reads
them as they are (no resize per sample, small files, fast stage); a change of the input size
re-runs the stage through its params. The 0-degree render at that size overlays the photo
resized to the same size, because cameras are expressed in the normalised image frame.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genreid.meshes.estimators import Estimator, SmplParams
from genreid.meshes.overlay import overlay_sheet, save_png, silhouette_agreement
from genreid.meshes.store import RenderStore, RenderWriter
from genreid.meshes.views import render_views
from genreid.utils.faults import fault_point
from genreid.utils.isa import active_cap

log = logging.getLogger(__name__)

MaskSource = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class MeshSource:
    """Where the SMPL parameters come from and the body they pose. ``body_model_spec`` is ``mesh.body_model``
    as written (recorded in the render signature beside the body's fingerprint)."""

    estimator: Estimator
    body_model: Any
    body_model_spec: str


@dataclass(frozen=True)
class RenderOptions:
    """How every split is rendered: the angles, the stored size (the network input size), the images per
    chunk (the resume unit), the device, and whether a progress bar is shown."""

    angles: Sequence[int]
    height: int
    width: int
    batch_size: int
    device: torch.device | str = "cpu"
    progress: bool = True


@dataclass(frozen=True)
class RenderChecks:
    """What the stage shows of its renders in ``results_dir``: the overlay sheet of ``overlay_samples`` rows
    drawn with ``seed`` (0: none), and with ``masks`` (SynthReID's person masks) the alignment report."""

    results_dir: str | os.PathLike
    overlay_samples: int = 0
    seed: int = 0
    masks: MaskSource | None = None


def relative_paths(paths: Sequence[str], prepared_dir: str | os.PathLike) -> list[str]:
    """Manifest paths relative to the prepared folder (POSIX), the index key of the render store."""
    root = Path(prepared_dir).absolute()  # not resolve(): DVC may link files into its cache
    out = []
    for p in paths:
        p = Path(p)
        try:
            out.append(p.relative_to(root).as_posix() if p.is_absolute() else p.as_posix())
        except ValueError:
            out.append(p.as_posix())
    return out


def manifest_digest(rel_paths: Sequence[str], hashes: Sequence[str] | None = None) -> str:
    h = hashlib.sha1()
    for i, p in enumerate(rel_paths):
        h.update(p.encode())
        if hashes is not None:
            h.update(str(hashes[i]).encode())
    return h.hexdigest()


# Source files whose change alters the renders: a finished split made with other code is redone.
_RENDER_CODE = ("genreid/render", "genreid/body", "genreid/meshes/views.py", "genreid/meshes/estimators.py",
                "genreid/meshes/hmr.py", "genreid/meshes/crop.py")


def code_fingerprint() -> str:
    """sha1 of the rendering code (DVC reruns the stage on a code change; this makes the rerun re-render)."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha1()
    for unit in _RENDER_CODE:
        path = root / unit
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def body_fingerprint(body_model: Any) -> str:
    """sha1 of the body model's response to a fixed probe (covers the SMPL file and the stand-in's code)."""
    betas = torch.linspace(-1, 1, 10).reshape(1, 10)
    pose = torch.linspace(-0.3, 0.3, 72).reshape(1, 72)
    device = torch.device("cpu")
    if isinstance(body_model, torch.nn.Module):
        device = next((t.device for t in body_model.buffers()), device)
    with torch.no_grad():
        vertices, _ = body_model.forward(betas.to(device), pose.to(device))
    h = hashlib.sha1(np.round(vertices.double().cpu().numpy(), 4).tobytes())
    h.update(np.asarray(torch.as_tensor(body_model.faces).cpu().numpy(), dtype=np.int64).tobytes())
    return h.hexdigest()


def render_split(table: pd.DataFrame, prepared_dir: str | os.PathLike, out_dir: str | os.PathLike, split: str,
                 source: MeshSource, options: RenderOptions, stop_after_chunks: int | None = None) -> dict[str, Any]:
    """Render one split resumably; returns counts and this run's timing (for the results file only:
    the cached outputs never hold timings). ``stop_after_chunks`` simulates a kill."""
    from tqdm import tqdm

    estimator, body_model = source.estimator, source.body_model
    angles, height, width, batch_size = options.angles, options.height, options.width, options.batch_size
    device, progress = options.device, options.progress
    abs_paths = [Path(p) for p in table["path"]]
    rel = relative_paths([str(p) for p in abs_paths], prepared_dir)
    hashes = table["sha1"].tolist() if "sha1" in table.columns else None
    signature = {**estimator.signature(), "body_model": source.body_model_spec, "body": body_fingerprint(body_model),
                 "code": code_fingerprint(), "manifest": manifest_digest(rel, hashes)}
    cap = active_cap()
    if cap != "off":  # torch renders under the cap: other kernels, other bits
        signature["cpu_isa_cap"] = cap
    writer = RenderWriter(out_dir, split, len(table), angles, height, width, batch_size, signature)
    start, done = time.perf_counter(), 0
    if writer.is_complete():
        log.info("meshes %s: %d images already rendered and verified, nothing to do", split, len(table))
        return {"seconds": round(time.perf_counter() - start, 3), "renders_per_s": None, "device": str(device),
                "images": len(table), "rendered_chunks": 0, "reused": True}
    pending = writer.open()
    total = (len(table) + batch_size - 1) // batch_size
    log.info("meshes %s: %d images, %d of %d chunks to render", split, len(table), len(pending), total)
    for k in tqdm(pending, desc=f"meshes {split}", unit="chunk", disable=not progress):
        if stop_after_chunks is not None and done >= stop_after_chunks:
            raise KeyboardInterrupt(f"stopped after {done} chunks (simulated interruption)")
        fault_point("meshes.chunk")
        rows = writer.chunk_rows(k)
        params = estimator.estimate(abs_paths[rows], rel[rows])
        views = render_views(body_model, params, angles, height, width, device)
        writer.write_chunk(k, views, params.as_dict())
        done += 1
    seconds = time.perf_counter() - start
    index = pd.DataFrame({"row": np.arange(len(table)), "path": rel,
                          **{c: table[c].to_numpy() for c in ("pid", "camid") if c in table.columns}})
    rendered = sum(writer.chunk_rows(k).stop - writer.chunk_rows(k).start for k in pending) * len(angles)
    stats = {"seconds": round(seconds, 3), "renders_per_s": round(rendered / seconds, 1) if seconds > 0 else None,
             "device": str(device)}
    writer.finalize(index)
    return {**stats, "images": len(table), "rendered_chunks": len(pending), "reused": False}


def load_photos(paths: Sequence[str | os.PathLike], height: int, width: int) -> list[np.ndarray]:
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB").resize((width, height), Image.BICUBIC)))
    return out


def write_overlay(store: RenderStore, prepared_dir: str | os.PathLike, path: str | os.PathLike,
                  samples: int, seed: int) -> list[int]:
    """Overlay sheet of ``samples`` seeded rows of a split; returns the rows shown."""
    if samples <= 0 or len(store) == 0:
        return []
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(store), size=min(samples, len(store)), replace=False))
    tile_h = max(128, store.height)
    photos = load_photos([Path(prepared_dir) / p for p in store.index["path"].iloc[rows]], tile_h, tile_h // 2)
    renders = {a: store.batch(rows, a) for a in store.angles}
    save_png(overlay_sheet(photos, renders, store.angles), path)
    return rows.tolist()


def alignment_report(store: RenderStore, masks: MaskSource) -> dict[str, Any]:
    """Silhouette agreement of the stored 0-degree renders with the generator's person masks."""
    out: dict[str, Any] = {"images": len(store)}
    if len(store) == 0:
        return out
    scores = silhouette_agreement(store.batch(np.arange(len(store)), 0), masks(store.index["path"].tolist()))
    for name, v in scores.items():
        out[name] = {"mean": float(v.mean()), "median": float(np.median(v)), "p05": float(np.quantile(v, 0.05)),
                     "min": float(v.min())}
    return out


def run_meshes(tables: dict[str, pd.DataFrame], prepared_dir: str | os.PathLike, out_dir: str | os.PathLike,
               source: MeshSource, options: RenderOptions, checks: RenderChecks) -> dict[str, Any]:
    """Every split of ``tables`` in its order, then the overlay sheet of the first and (with
    ``checks.masks``) the alignment check of each."""
    splits = list(tables)
    report: dict[str, Any] = {"splits": {}}
    for split in splits:
        report["splits"][split] = render_split(tables[split], prepared_dir, out_dir, split, source, options)
    first = RenderStore(out_dir, splits[0])
    report["overlay_rows"] = write_overlay(first, prepared_dir, Path(checks.results_dir) / "overlay.png",
                                           checks.overlay_samples, checks.seed)
    if checks.masks is not None:
        report["alignment"] = {split: alignment_report(RenderStore(out_dir, split), checks.masks)
                               for split in splits}
    return report


def stored_params(store: RenderStore) -> SmplParams:
    """The parameters a finished split was rendered with (``detected`` absent in older stores: all found)."""
    smpl = store.smpl()
    return SmplParams(smpl["betas"], smpl["pose"], smpl["cam"], detected=smpl.get("detected"))


def measure_accuracy(tables: dict[str, pd.DataFrame], prepared_dir: str | os.PathLike, out_dir: str | os.PathLike,
                     used: str, others: dict[str, Estimator], truth: Any | None, bodies: tuple[Any, Any],
                     batch_size: int) -> tuple[dict[str, Any], list[Any]]:
    """Accuracy of the estimator the renders came from (read back from the store) and of ``others``
    (run here, rendered at 0 degrees only) on every split of ``tables``, against SynthReID's
    ``truth`` (:class:`genreid.synth.ground_truth.GroundTruth`; None: detection rates only).

    Returns the report (aggregates per estimator, over all splits and per split, plus timings) and
    the per-split :class:`genreid.meshes.accuracy.Measured` (per-image scores, renders)."""
    from genreid.meshes.accuracy import Measured, aggregate, run_estimator, score, unscored

    measured: list[Measured] = []
    seconds: dict[str, float] = {}
    for split, table in tables.items():
        store = RenderStore(out_dir, split)
        rel = store.index["path"].tolist()
        params, renders = stored_params(store), store.batch(np.arange(len(store)), 0)
        runs = [(used, params, renders)]
        if truth is not None:
            abs_paths = [Path(p) for p in table["path"]]
            for name, estimator in others.items():
                start = time.perf_counter()
                est_params, est_renders = run_estimator(estimator, abs_paths, rel, bodies[0],
                                                        (store.height, store.width), batch_size)
                seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - start, 3)
                runs.append((name, est_params, est_renders))
        for name, p, r in runs:
            scores = score(name, split, rel, p, r, truth, bodies) if truth is not None else unscored(name, split,
                                                                                                    rel, p)
            measured.append(Measured(name, split, p, r, scores))
    report: dict[str, Any] = {"used": used, "ground_truth": truth is not None, "estimators": {}}
    for name in dict.fromkeys(m.estimator for m in measured):
        mine = [m for m in measured if m.estimator == name]
        report["estimators"][name] = {"all": aggregate(pd.concat([m.scores for m in mine], ignore_index=True)),
                                      "splits": {m.split: aggregate(m.scores) for m in mine}}
    return {**report, "seconds": seconds}, measured

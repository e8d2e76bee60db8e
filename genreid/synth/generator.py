"""SynthReID: render the plan into the Market-1501 layout, with ground truth, resumably.

Work happens in a persistent sibling folder (``.<name>.partial``): each batch writes its
images, then its ground-truth chunk (the batch's completion mark). A killed run resumes at
the first batch without a chunk; every image draws its randomness from (seed, image index)
alone, so a resumed run writes the same bytes as an uninterrupted one. The finished folder
replaces ``out_dir`` in one rename.

Every pixel and ground-truth value comes from float64 numpy maths in a fixed order
(:mod:`genreid.render.exact`, :mod:`genreid.body.exact`), so the bytes are the same on every
machine and do not depend on the batch size; :func:`content_hash` identifies the result and
:mod:`genreid.synth.reference` holds the committed hashes of the shipped settings.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from genreid.body.exact import load_exact_body
from genreid.config.sections.data import SynthConfig
from genreid.render.exact import render_person
from genreid.render.lighting import Lighting
from genreid.synth.accessories import attach, bag_box, box_mesh
from genreid.synth.appearance import ATTRIBUTE_NAMES, BAGS, Identity, body_regions, sample_identity, vertex_colours
from genreid.synth.ground_truth import write_npz_deterministic
from genreid.synth.plan import SPLIT_DIRS, Shot, make_plan, split_counts
from genreid.synth.poses import walking_pose
from genreid.synth.scene import CameraLook, background_crop, camera_effects, draw_occluder, make_camera_looks
from genreid.utils import exactmath
from genreid.utils.atomic import write_bytes, write_json
from genreid.utils.faults import fault_point
from genreid.utils.versions import SYNTHREID_GENERATOR_VERSION

log = logging.getLogger(__name__)
# 2: every pixel and ground-truth value from float64 numpy maths in a fixed order (genreid.render.exact),
#    the same bytes on every machine; 1: torch/PyTorch3D rendering (bytes depended on the CPU)
GENERATOR_VERSION = SYNTHREID_GENERATOR_VERSION
_BOX_FACES = box_mesh(np.zeros(3), np.ones(3))[1]


def _identity(seed: int, person: int, palette_size: int) -> Identity:
    stream = [seed, 0, person] if person > 0 else [seed, 4, -person]
    return sample_identity(np.random.default_rng(stream), palette_size)


def _framing(rng: np.random.Generator, verts: np.ndarray, look: CameraLook, distractor: bool, height: int,
             width: int) -> np.ndarray:
    """Weak-perspective cam: the person spans about the camera's fill, off-centre a little
    (detector boxes are loose); distractors are badly framed partial people."""
    lo, hi = verts.min(0), verts.max(0)
    fill = rng.uniform(0.95, 1.6) if distractor else look.fill * rng.uniform(0.92, 1.08)
    s = 2.0 * fill / (hi[1] - lo[1])
    spread = (0.3, 0.25) if distractor else (0.05, 0.03)
    dx, dy = rng.normal(0, spread[0]) * width, rng.normal(0, spread[1]) * height
    tx = -(lo[0] + hi[0]) / 2 + dx / (height / 2 * s)
    ty = -(lo[1] + hi[1]) / 2 - dy / (height / 2 * s)
    return np.array([s, tx, ty], dtype=np.float32)


def jpeg_encoder() -> dict[str, str]:
    """The JPEG encoder's versions: its output bytes are fixed by them (the lock file pins Pillow)."""
    import PIL
    from PIL import features

    return {"pillow": PIL.__version__, "libjpeg_turbo": str(features.version("libjpeg_turbo"))}


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def content_hash(root: str | os.PathLike) -> str:
    """sha256 over every file under ``root`` (sorted relative paths and their sha256): the dataset's identity."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(root).as_posix()}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


class _Renderer:
    """Everything fixed for one dataset: body model, regions, camera looks."""

    def __init__(self, seed: int, height: int, body_model: str, palette_size: int, occlusion_prob: float,
                 looks: list[CameraLook]):
        self.seed, self.h, self.w = seed, height, height // 2
        self.body = load_exact_body(body_model)
        _, rest_joints = self.body.shaped(np.zeros((1, 10)))
        self.regions = body_regions(self.body.skinning_weights, self.body.template, rest_joints[0])
        self.palette_size, self.occlusion_prob, self.looks = palette_size, occlusion_prob, looks

    def batch(self, shots: list[Shot], turn: float = 0.0,
              occluders: bool = True) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """The photos of ``shots`` (uint8, before JPEG) and their ground truth.

        ``turn`` (radians) turns every posed person, bag included, about the vertical axis through
        the pelvis after framing, the yaw convention of the mesh stage's structure renders
        (:func:`genreid.render.camera.rotate_about_vertical`); camera, light, background and camera
        effects stay the photo's. ``occluders=False`` draws the occluder's random numbers but paints
        none, and adds the empty scene through the same camera draws as ``background``: with both,
        the batch is the true novel views of :mod:`genreid.synth.novel_views`."""
        h, w = self.h, self.w
        rngs = [np.random.default_rng([self.seed, 1, s.index]) for s in shots]
        ids = [_identity(self.seed, s.person, self.palette_size) for s in shots]
        looks = [self.looks[s.camera] for s in shots]
        yaw = np.array([lk.yaw + 180.0 * (r.random() < 0.5) + r.normal(0, 25) for lk, r in zip(looks, rngs)]) % 360
        # rendered from the float32 values the ground truth stores, so re-rendering it gives the same image
        pose = np.stack([walking_pose(r, y) for r, y in zip(rngs, yaw)]).astype(np.float32)
        betas = np.array([i.betas for i in ids], dtype=np.float32)
        posed = self.body.forward(betas, pose)
        cams = np.stack([_framing(r, v, lk, s.pid == 0, h, w) for r, v, lk, s in zip(rngs, posed.vertices, looks,
                                                                                      shots)])
        images, backgrounds, rows = [], [], {k: [] for k in ("bbox", "visible", "occluded", "mask_bits")}
        for k, (ident, r, lk) in enumerate(zip(ids, rngs, looks)):
            colours = vertex_colours(ident, self.regions, self.body.template, posed.rest_joints[k])
            verts, faces = posed.vertices[k], self.body.faces
            if ident.bag != "none":
                side = 1 if r.random() < 0.5 else -1
                corners, joint = bag_box(ident.bag, posed.rest_vertices[k], posed.rest_joints[k], side)
                box = attach(corners, joint, posed.rest_joints[k], posed.joints[k], posed.rotations[k])
                faces = np.concatenate([faces, _BOX_FACES + len(verts)])
                verts = np.concatenate([verts, box])
                colours = np.concatenate([colours, np.broadcast_to(np.asarray(BAGS[ident.bag_colour], np.float32),
                                                                   (8, 3))])
            if turn:
                verts = turn_about_vertical(verts, turn, posed.joints[k][0])
            rgb, alpha = render_person(verts, faces, colours, cams[k].astype(np.float64), h, w,
                                       Lighting(lk.light_dir, ambient=lk.ambient, diffuse=lk.diffuse))
            background = background_crop(lk, r, h, w).astype(np.float64)
            scene = rgb + background * (1.0 - alpha)[..., None]
            person = alpha >= 0.5
            canvas = scene if occluders else scene.copy()  # without occluders: the same draws, nothing painted
            occ = draw_occluder(canvas, r) if r.random() < self.occlusion_prob else np.zeros((h, w), bool)
            occ &= occluders
            if not occluders:
                backgrounds.append(camera_effects(background, lk, copy.deepcopy(r)))
            images.append(camera_effects(scene, lk, r))
            ys, xs = np.nonzero(person)
            rows["bbox"].append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [-1, -1, -1, -1])
            rows["visible"].append((person & ~occ).sum() / max(person.sum(), 1))
            rows["occluded"].append(bool(occ.any()))
            rows["mask_bits"].append(np.packbits(person.reshape(-1)))
        gt = {"betas": betas, "pose": pose, "cam": cams, "yaw": yaw.astype(np.float32),
              "attributes": np.array([i.codes() for i in ids], dtype=np.int16),
              "bbox": np.array(rows["bbox"], dtype=np.int16), "visible": np.array(rows["visible"], np.float32),
              "occluded": np.array(rows["occluded"]), "mask_bits": np.stack(rows["mask_bits"]),
              "quality": np.array([lk.jpeg_quality for lk in looks], dtype=np.int16)}
        if not occluders:
            gt["background"] = np.stack(backgrounds)
        return images, gt


def turn_about_vertical(vertices: np.ndarray, radians: float, centre: np.ndarray) -> np.ndarray:
    """(V, 3) vertices turned about the vertical axis through ``centre``, counter-clockwise seen from above
    (the convention of :func:`genreid.render.camera.rotate_about_vertical`, in float64 with
    :mod:`genreid.utils.exactmath`'s sine and cosine, so the same bits on every machine)."""
    s, c = (float(v) for v in exactmath.sincos(radians))
    rel = np.asarray(vertices, np.float64) - np.asarray(centre, np.float64)
    return np.stack([c * rel[:, 0] + s * rel[:, 2], rel[:, 1], -s * rel[:, 0] + c * rel[:, 2]], 1) + centre


def generate_synthreid(out_dir: str | os.PathLike, settings: SynthConfig = SynthConfig(), *,
                       batch_size: int = 32, progress: bool = True, work_dir: str | os.PathLike | None = None,
                       stop_after_batches: int | None = None) -> dict[str, Any] | None:
    """Generate SynthReID with ``settings`` into ``out_dir`` and return its summary (also ``summary.json``).

    ``settings``: the config section ``data.synthetic`` (:class:`SynthConfig`, whose field descriptions
    explain each knob) or ``data.synthetic_b`` (:class:`SynthDomainBConfig`: ``domain: b``, darker, bluish,
    noisier, blurrier cameras, ``genreid.synth.scene.DOMAIN_B``).

    ``batch_size`` images are rendered per ground-truth chunk (the bytes do not depend on it).
    ``work_dir`` (default: ``.<out_dir name>.partial`` beside it) keeps finished batches across a kill.
    ``stop_after_batches`` stops early and returns None (tests of resume)."""
    from tqdm import tqdm

    st = settings
    seed, height = st.seed, st.height
    if height % 2 or height < 32:
        raise ValueError(f"height must be even and >= 32, got {height}")
    params = st.record()
    shots = make_plan(seed, st.num_train_ids, st.num_test_ids, st.num_cameras, st.cameras_per_id,
                      st.images_per_camera, st.num_distractors)
    out_dir = Path(out_dir)
    work = Path(work_dir) if work_dir else out_dir.with_name(f".{out_dir.name}.partial")
    fingerprint = {"generator_version": GENERATOR_VERSION, "batch_size": batch_size, **params}
    stamp = work / "params.json"
    if work.exists() and (not stamp.is_file() or json.loads(stamp.read_text()) != fingerprint):
        shutil.rmtree(work)
    for d in SPLIT_DIRS.values():
        (work / d).mkdir(parents=True, exist_ok=True)
    (work / "gt").mkdir(exist_ok=True)
    write_json(stamp, fingerprint)
    looks = make_camera_looks(seed, st.num_cameras, height, height // 2, st.colour_cast, st.blur_max,
                              domain=params.get("domain", "a"))
    renderer = _Renderer(seed, height, st.body_model, st.palette_size, st.occlusion_prob, looks)
    batches = [shots[i:i + batch_size] for i in range(0, len(shots), batch_size)]
    done = sum((work / "gt" / f"chunk_{b:05d}.npz").is_file() for b in range(len(batches)))
    if done:
        log.info("SynthReID: resuming, %d of %d batches already rendered", done, len(batches))
    bar = tqdm(total=len(shots), desc="SynthReID", unit="img", disable=not progress)
    for b, batch in enumerate(batches):
        chunk = work / "gt" / f"chunk_{b:05d}.npz"
        if chunk.is_file():
            bar.update(len(batch))
            continue
        if stop_after_batches is not None and b >= stop_after_batches:
            bar.close()
            return None
        images, gt = renderer.batch(batch)
        for shot, img, quality in zip(batch, images, gt.pop("quality")):
            write_bytes(work / shot.rel_path, _jpeg(img, int(quality)))
            fault_point("synth.image")  # a kill here leaves a batch of images with no ground-truth chunk
        write_npz_deterministic(chunk, gt)
        bar.update(len(batch))
    bar.close()
    summary = _finish(work, shots, len(batches), params, looks)
    _swap_into_place(work, out_dir)
    return summary


def _finish(work: Path, shots: list[Shot], num_batches: int, params: dict[str, Any],
            looks: list[CameraLook]) -> dict[str, Any]:
    chunks = []
    for b in range(num_batches):
        with np.load(work / "gt" / f"chunk_{b:05d}.npz") as z:
            chunks.append({k: z[k] for k in z.files})
    gt = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    gt.update(paths=np.array([s.rel_path for s in shots]), pids=np.array([s.pid for s in shots], dtype=np.int32),
              camids=np.array([s.camera for s in shots], dtype=np.int32),
              image_size=np.array([params["height"], params["height"] // 2], dtype=np.int32),
              attribute_names=np.array(ATTRIBUTE_NAMES))
    write_npz_deterministic(work / "ground_truth.npz", gt)
    summary = {
        "dataset": "SynthReID", "generator_version": GENERATOR_VERSION, "params": params,
        "layout": "Market-1501: bounding_box_train, query, bounding_box_test; PPPP_cCsS_FFFFFF_BB.jpg",
        "image_size": [params["height"], params["height"] // 2], "splits": split_counts(shots),
        "occluded_images": int(gt["occluded"].sum()),
        "cameras": [{"camera": c + 1, "cast": [round(float(x), 4) for x in lk.cast], "blur": round(lk.blur, 3),
                     "resample": round(lk.resample, 3), "fill": round(lk.fill, 3), "yaw": round(lk.yaw, 1),
                     "jpeg_quality": lk.jpeg_quality} for c, lk in enumerate(looks)],
    }
    write_json(work / "summary.json", summary)
    shutil.rmtree(work / "gt")
    (work / "params.json").unlink()
    return summary


def _swap_into_place(work: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` (absent, empty or a previous generation) by the finished folder."""
    if out_dir.exists():
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        else:
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(work, out_dir)
            shutil.rmtree(old, ignore_errors=True)
            return
    os.replace(work, out_dir)

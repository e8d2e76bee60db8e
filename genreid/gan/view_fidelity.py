"""View fidelity of a trained generator on the validation images, against SynthReID's true novel views.

For every validation image ``x`` and mesh angle, the generated view ``G(E_str(m_angle), a(x))`` is
compared with the true render of the same person turned by that angle (:mod:`genreid.synth.novel_views`)
by the metrics of :mod:`genreid.gan.fidelity`: masked L1, PSNR, SSIM, silhouette IoU and identity
preservation. Everything is compared at the network size, the size G draws: the true views, their masks
and backgrounds are resized as the image loader resizes photos (:meth:`TrueViews.resized`).

Which networks: after stage 2 the generator is ``pretrain/generator.pt`` with the frozen stage-1 encoder
as E_id; after stage 3 (GCL, GCL+) it is the last training checkpoint of that run (E_id, E_str and G as
they stopped, the state the run ended in). The identity reference encoder is fixed whatever the
generator: :data:`REFERENCE_ENCODER`.

The file also holds ``input_copy``: the same metrics for a "generator" that returns its input photo at
every angle, a floor a generator must beat to have learned to turn people at all.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genreid.data.loader import IMAGENET_MEAN, IMAGENET_STD, denormalize
from genreid.data.true_views import TrueViews
from genreid.errors import CheckpointError
from genreid.gan.fidelity import (
    SILHOUETTE_THRESHOLD,
    identity_preservation,
    image_quality,
    person_silhouette,
    silhouette_iou,
    summarise_angle,
)
from genreid.gan.renders import renders_to_tensor
from genreid.meshes.store import RenderStore

REFERENCE_ENCODER = ("the stage-1 (baseline) encoder of the same seed, models/<ds>/baseline/encoder.pt, in eval "
                     "mode; L2-normalised embeddings f, Euclidean ranking, no flip. It never saw a generated image "
                     "and is the same for every generator of a seed (stage 2, GCL, GCL+)")
SILHOUETTE_RULE = (f"generated person = pixels whose mean absolute RGB difference from the true empty scene (same "
                   f"camera draws) exceeds {SILHOUETTE_THRESHOLD} of the range (genreid.gan.fidelity."
                   f"person_silhouette); true person = the renderer's alpha >= 0.5 (bags included)")


@dataclass
class ViewGenerator:
    """The three networks that draw a novel view: E_id (appearance code), E_str (structure), G."""

    id_encoder: nn.Module
    str_encoder: nn.Module
    decoder: nn.Module
    source: dict[str, Any]  # which files and checkpoint they come from (written to the json)


def file_sha1(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stage2_generator(generator_path: str | os.PathLike, encoder_path: str | os.PathLike,
                     device: torch.device | str = "cpu") -> ViewGenerator:
    """Stage 2's generator with the frozen stage-1 encoder it was trained with."""
    from genreid.models.generator import load_generator
    from genreid.models.id_encoder import load_encoder

    e_str, dec, _, _ = load_generator(generator_path, map_location=device)
    e_id, _ = load_encoder(encoder_path, map_location=device)
    return ViewGenerator(e_id, e_str, dec, {"generator": str(generator_path), "id_encoder": str(encoder_path),
                                            "generator_sha1": file_sha1(generator_path)})


def stage3_generator(ckpt_dir: str | os.PathLike, encoder_path: str | os.PathLike,
                     generator_path: str | os.PathLike, device: torch.device | str = "cpu") -> ViewGenerator:
    """E_id, E_str and G of a GCL / GCL+ run's last checkpoint; the architectures come from the run's
    ``encoder.pt`` and stage 2's ``generator.pt`` (stage 3 changes weights, not shapes)."""
    from genreid.engine.checkpoint import Checkpointer
    from genreid.models.generator import load_generator
    from genreid.models.id_encoder import load_encoder
    from genreid.models.state import load_state_strict

    e_str, dec, _, _ = load_generator(generator_path, map_location=device)
    e_id, _ = load_encoder(encoder_path, map_location=device)
    if not Path(ckpt_dir).is_dir():
        raise CheckpointError(f"no stage-3 checkpoints in {ckpt_dir}", "run its train stage (`dvc repro train`)")
    blob = Checkpointer(ckpt_dir).latest(map_location=device)
    state = blob.get("state", {}) if blob else {}
    missing = [k for k in ("id_encoder", "str_encoder", "decoder") if k not in state]
    if blob is None or missing:
        raise CheckpointError(f"{ckpt_dir}: no checkpoint with the generator's networks "
                              f"({'none found' if blob is None else 'missing ' + ', '.join(missing)})",
                              "only GCL and GCL+ train a generator in stage 3; rerun that train stage")
    for name, module in (("id_encoder", e_id), ("str_encoder", e_str), ("decoder", dec)):
        load_state_strict(module, state[name], f"{ckpt_dir} [{name}]")
    return ViewGenerator(e_id, e_str, dec, {"checkpoint_dir": str(ckpt_dir), "step": int(blob["step"]),
                                            "epochs_done": int(blob["epoch"]), "generator_arch": str(generator_path)})


def to_uint8(normalised: torch.Tensor) -> np.ndarray:
    """ImageNet-normalised (N, 3, H, W) -> uint8 (N, H, W, 3), the picture a person would see."""
    return (denormalize(normalised.float()).permute(0, 2, 3, 1).cpu().numpy() * 255.0).round().astype(np.uint8)


def to_normalised(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, 3) -> ImageNet-normalised (N, 3, H, W), the network input."""
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((t - mean) / std).to(device)


@torch.no_grad()
def embed_all(encoder: nn.Module, images: np.ndarray, batch_size: int = 128,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """L2-normalised embeddings f of uint8 images, encoder in eval mode (the evaluation protocol)."""
    from genreid.evaluation.extract import embed, eval_mode

    out = []
    with eval_mode(encoder):
        for i in range(0, len(images), batch_size):
            out.append(F.normalize(embed(encoder, to_normalised(images[i:i + batch_size], device)).float(), dim=1))
    return torch.cat(out).cpu()


@torch.no_grad()
def generate_views(gen: ViewGenerator, x: torch.Tensor, store: RenderStore, rows: np.ndarray,
                   angles: Sequence[int], batch_size: int = 64) -> dict[int, np.ndarray]:
    """angle -> uint8 (N, H, W, 3) views G(E_str(m_angle), a(x)) of normalised inputs ``x``, networks in
    eval mode; the appearance codes a(x) are computed once for every angle."""
    from genreid.evaluation.extract import eval_mode

    h, w = x.shape[-2:]
    dev = x.device
    out: dict[int, list[np.ndarray]] = {int(a): [] for a in angles}
    with eval_mode(gen.id_encoder), eval_mode(gen.str_encoder), eval_mode(gen.decoder):
        for i in range(0, len(x), batch_size):
            a, _ = gen.id_encoder(x[i:i + batch_size])
            for angle in out:
                s = gen.str_encoder(renders_to_tensor(store, rows[i:i + batch_size], angle, h, w, dev))
                out[angle].append(to_uint8(gen.decoder(s, a)))
    return {angle: np.concatenate(parts) for angle, parts in out.items()}


def fidelity_per_angle(generated: dict[int, np.ndarray], truth: TrueViews, pids: Sequence[int],
                       reference: nn.Module, true_features: dict[int, torch.Tensor],
                       device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """Per angle: the means of :mod:`genreid.gan.fidelity`'s metrics over the images (rows of ``truth``, at
    the generated size). ``true_features`` are the reference embeddings of the true views per angle
    (computed once, shared by the generator and the input-copy floor); the generated views of several angles
    may be the same array (the floor), then embedded once."""
    rows, embedded = [], {}
    for angle, views in generated.items():
        true_images, true_masks = truth.at(angle)
        quality = image_quality(views, true_images, true_masks)
        iou = silhouette_iou(person_silhouette(views, truth.backgrounds), true_masks)
        if id(views) not in embedded:
            embedded[id(views)] = embed_all(reference, views, device=device)
        rank1, m_ap = identity_preservation(embedded[id(views)], true_features[angle], pids)
        rows.append(summarise_angle(angle, quality, iou, rank1, m_ap).as_dict())
    return rows


def rule_ceiling(truth: TrueViews, angles: Sequence[int], height: int, width: int) -> dict[str, float]:
    """Per angle, the mean IoU of the silhouette rule applied to the true views themselves: what a perfect
    generator would score on ``silhouette_iou``."""
    truth = truth.resized(height, width)
    out = {}
    for angle in angles:
        images, masks = truth.at(int(angle))
        found = person_silhouette(images, truth.backgrounds)
        out[str(int(angle))] = round(float(silhouette_iou(found, masks).mean()), 4)
    return out


def mean_row(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The mean over angles of each metric (PSNR over the finite ones)."""
    keys = ("masked_l1", "psnr", "ssim", "silhouette_iou", "rank1", "mAP")
    out = {}
    for k in keys:
        vals = np.array([r[k] for r in rows], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[k] = round(float(vals.mean()), 4) if len(vals) else float("nan")
    return out


def view_fidelity(gen: ViewGenerator, reference: nn.Module, val_images: torch.Tensor, store: RenderStore,
                  truth: TrueViews, pids: Sequence[int], angles: Sequence[int]) -> dict[str, Any]:
    """The ``view_fidelity.json`` body: per angle and mean, for ``gen`` and for the input-copy floor.

    ``val_images`` are the validation photos as the network reads them (normalised, network size), in the
    row order of ``store`` and ``truth``."""
    h, w = val_images.shape[-2:]
    dev = val_images.device
    rows = np.arange(len(truth))
    truth = truth.resized(h, w)
    true_features = {int(a): embed_all(reference, truth.at(int(a))[0], device=dev) for a in angles}
    generated = generate_views(gen, val_images, store, rows, angles)
    per_angle = fidelity_per_angle(generated, truth, pids, reference, true_features, dev)
    photo = to_uint8(val_images)
    floor = fidelity_per_angle({int(a): photo for a in angles}, truth, pids, reference, true_features, dev)
    return {"images": len(truth), "angles": [int(a) for a in angles], "image_size": [int(h), int(w)],
            "per_angle": per_angle, "mean": mean_row(per_angle),
            "input_copy": {"per_angle": floor, "mean": mean_row(floor)},
            "silhouette_rule_ceiling": rule_ceiling(truth, angles, h, w),
            "reference_encoder": REFERENCE_ENCODER, "silhouette_rule": SILHOUETTE_RULE,
            "metrics": {"masked_l1": "mean |generated - true| over the true person's pixels, 0-255",
                        "psnr": "dB over the whole image (scikit-image peak_signal_noise_ratio, range 255)",
                        "ssim": "whole image (scikit-image structural_similarity, Gaussian 11x11 window, "
                                "sigma 1.5, population covariances)",
                        "silhouette_iou": "IoU of the generated and true silhouettes (silhouette_rule)",
                        "rank1": "percent; generated views as queries, true views at the same angle as gallery, "
                                 "every true view of the same identity a match",
                        "mAP": "percent; as rank1"},
            "networks": gen.source}

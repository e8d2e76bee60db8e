"""How hard is a SynthReID build? Measured, not assumed.

Two learning-free references on the query/gallery split, with the standard protocol
(``genreid.evaluation.evaluate_rank``, same-pid-same-camera gallery items removed):
(a) colour histograms, global (RGB 8x8x8) and in 6 horizontal stripes (HSV 8x4x4), Hellinger
features; (b) an untrained ResNet-18 (random init, fixed seed, eval mode) at the network input
size. If a histogram reached high mAP, colour alone would identify people and learning would
have nothing to show; the default build must keep it below 50% mAP.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genreid.errors import DataError
from genreid.synth.plan import SPLIT_DIRS

HEADROOM_MAP = 50.0  # percent: the histogram baseline must stay below this
_NAME = re.compile(r"^(\d+)_c(\d+)s\d+_\d+_\d+\.jpg$")


def read_split(dataset_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """uint8 images (N,H,W,3), pids, 0-based camids and file names of one split, sorted by name."""
    from PIL import Image

    folder = Path(dataset_dir) / SPLIT_DIRS[split]
    names = sorted(p.name for p in folder.glob("*.jpg")) if folder.is_dir() else []
    if not names:
        raise DataError(f"no SynthReID images in {folder}",
                        "generate the dataset first (`dvc repro prepare@synthetic`)")
    imgs, pids, cams = [], [], []
    for name in names:
        m = _NAME.match(name)
        if m is None:
            raise DataError(f"{folder / name} does not follow Market-1501 naming", "regenerate the dataset")
        with Image.open(folder / name) as im:
            imgs.append(np.asarray(im.convert("RGB")))
        pids.append(int(m.group(1)))
        cams.append(int(m.group(2)) - 1)
    return np.stack(imgs), np.array(pids), np.array(cams), names


def colour_histograms(images: np.ndarray, stripes: int = 1) -> np.ndarray:
    """Hellinger-mapped colour histograms: RGB 8x8x8 for the whole image (``stripes=1``), or
    HSV 8x4x4 per horizontal stripe concatenated (a part-aware classic)."""
    n, h = images.shape[:2]
    if stripes == 1:
        q = images.astype(np.int64) // 32
        codes, bins = q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2], 512
    else:
        from matplotlib.colors import rgb_to_hsv

        hsv = rgb_to_hsv(images.astype(np.float32) / 255.0)
        q = np.minimum((hsv * np.array([8, 4, 4])).astype(np.int64), np.array([7, 3, 3]))
        codes, bins = q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2], 128
    edges = np.linspace(0, h, stripes + 1).astype(int)
    parts = []
    for a, b in zip(edges[:-1], edges[1:]):
        flat = (np.arange(n)[:, None] * bins + codes[:, a:b].reshape(n, -1)).ravel()
        hist = np.bincount(flat, minlength=n * bins).reshape(n, bins).astype(np.float64)
        parts.append(np.sqrt(hist / hist.sum(1, keepdims=True)))
    feats = np.concatenate(parts, 1)
    return (feats / np.linalg.norm(feats, axis=1, keepdims=True)).astype(np.float32)


@torch.no_grad()
def untrained_features(images: np.ndarray, height: int, width: int, seed: int = 0, batch_size: int = 128) -> np.ndarray:
    """Global-pooled features of a randomly initialised ResNet-18 (eval mode) at ``height`` x ``width``."""
    import torch.nn.functional as F
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    net = resnet18(weights=None)
    net.fc = torch.nn.Identity()
    net.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
        out.append(net((x - mean) / std))
    return F.normalize(torch.cat(out), dim=1).numpy()


def _evaluate(q: np.ndarray, g: np.ndarray, qp, gp, qc, gc) -> dict[str, float]:
    from genreid.evaluation import compute_distance, evaluate_rank

    result = evaluate_rank(compute_distance(q, g), qp, gp, qc, gc, protocol="rank")
    s = result.summary()
    return {k: round(s[k], 2) for k in ("mAP", "R1", "R5", "R10")}


def measure_difficulty(dataset_dir: str | os.PathLike, net_height: int, net_width: int,
                       seed: int = 0) -> dict[str, Any]:
    """mAP/CMC of the learning-free references on query/gallery (percent)."""
    q_img, qp, qc, _ = read_split(dataset_dir, "query")
    g_img, gp, gc, _ = read_split(dataset_dir, "gallery")
    rows = {
        "colour histogram (RGB 8x8x8, global)": (colour_histograms(q_img), colour_histograms(g_img)),
        "colour histogram (HSV 8x4x4, 6 stripes)": (colour_histograms(q_img, 6), colour_histograms(g_img, 6)),
        f"untrained ResNet-18 ({net_height}x{net_width}, seed {seed})":
            (untrained_features(q_img, net_height, net_width, seed), untrained_features(g_img, net_height, net_width,
                                                                                        seed)),
    }
    metrics = {name: _evaluate(q, g, qp, gp, qc, gc) for name, (q, g) in rows.items()}
    best_hist = max(v["mAP"] for k, v in metrics.items() if k.startswith("colour"))
    return {"protocol": "rank AP, same pid + same camera removed, squared Euclidean on L2-normalised features",
            "query_images": len(qp), "gallery_images": len(gp), "metrics": metrics,
            "histogram_best_mAP": best_hist, "headroom_threshold_mAP": HEADROOM_MAP,
            "headroom_ok": bool(best_hist < HEADROOM_MAP)}


def difficulty_markdown(report: dict[str, Any]) -> str:
    lines = ["# SynthReID difficulty (learning-free references)", "",
             f"Query {report['query_images']} images, gallery {report['gallery_images']} images; "
             f"{report['protocol']}.", "",
             "| reference | mAP | R1 | R5 | R10 |", "|---|---:|---:|---:|---:|"]
    for name, m in report["metrics"].items():
        lines.append(f"| {name} | {m['mAP']:.1f} | {m['R1']:.1f} | {m['R5']:.1f} | {m['R10']:.1f} |")
    verdict = "OK" if report["headroom_ok"] else "TOO EASY"
    lines += ["", f"Headroom: best histogram mAP {report['histogram_best_mAP']:.1f}% "
              f"(must stay below {report['headroom_threshold_mAP']:.0f}%): **{verdict}**.", "",
              "![contact sheet](contact_sheet.png)", ""]
    return "\n".join(lines)


def write_difficulty_report(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike, net_height: int,
                            net_width: int, seed: int = 0, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """``difficulty.json`` (metrics), ``difficulty.md`` (table) and ``contact_sheet.png`` in ``out_dir``."""
    from genreid.synth.contact_sheet import contact_sheet
    from genreid.utils.atomic import write_json, write_text

    out = Path(out_dir)
    report = measure_difficulty(dataset_dir, net_height, net_width, seed)
    summary = Path(dataset_dir) / "summary.json"
    if summary.is_file():
        import json

        gen = json.loads(summary.read_text())
        report["dataset"] = {"params": gen.get("params"), "splits": gen.get("splits")}
    if provenance is not None:
        report["provenance"] = provenance
    contact_sheet(dataset_dir, out / "contact_sheet.png", seed=seed)
    write_json(out / "difficulty.json", report)
    write_text(out / "difficulty.md", difficulty_markdown(report))
    return report

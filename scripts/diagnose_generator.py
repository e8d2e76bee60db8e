"""Why do the generated views look the way they do? Three numbers from a finished stage 2.

1. Does E_id's appearance code carry colour? Ridge regression from the code to the mean colour
   of the upper and lower body (centre columns), R^2 on held-out images.
2. Does G use the code? Mean |G(s, a_i) - G(s, a_j)| for one structure and two people's codes,
   next to the mean |x_i - x_j| of the real images.
3. How good is the reconstruction? Held-out L1 of G(E_str(m0), a) against x, next to the L1 of
   predicting the mean image.

Run after `dvc repro pretrain@<ds>` (reads data/prepared, data/meshes, models/<ds>/baseline and
models/<ds>/pretrain):

    .venv/bin/python scripts/diagnose_generator.py --dataset synthetic
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import Ridge

from genreid.config import load_config
from genreid.data.manifest import load_prepared
from genreid.engine.batches import image_dataset
from genreid.gan.renders import open_renders, renders_to_tensor
from genreid.models.generator import load_generator
from genreid.models.id_encoder import load_encoder


def _colour_targets(x: torch.Tensor) -> np.ndarray:
    """Mean RGB of the upper and lower half of the centre columns (where the person stands)."""
    h, w = x.shape[2:]
    centre = x[:, :, :, w // 4: 3 * w // 4]
    return torch.cat([centre[:, :, : h // 2].mean((2, 3)), centre[:, :, h // 2:].mean((2, 3))], 1).numpy()


def diagnose(train_df: pd.DataFrame, render_dir: str | Path, encoder_path: str | Path, generator_path: str | Path,
             height: int, width: int, angles: list[int], n_images: int = 256) -> dict[str, object]:
    """The three numbers of the module docstring on up to ``n_images`` training images."""
    torch.manual_seed(0)
    enc, _ = load_encoder(encoder_path)
    e_str, dec, _, _ = load_generator(generator_path)
    for m in (enc, e_str, dec):
        m.eval()
    ds = image_dataset(train_df, height, width)
    rows = np.linspace(0, len(train_df) - 1, min(n_images, len(train_df))).astype(int).tolist()
    store = open_renders(str(render_dir), "train", train_df, angles)
    with torch.no_grad():
        x = torch.stack([ds[i]["image"] for i in rows])
        m0 = renders_to_tensor(store, rows, 0, height, width, "cpu")
        a, _ = enc(x)
        codes = a.numpy()
        codes = (codes - codes.mean(0)) / (codes.std(0) + 1e-6)
        target = _colour_targets(x)
        half = len(rows) // 2
        pred = Ridge(alpha=10.0).fit(codes[:half], target[:half]).predict(codes[half:])
        resid = ((pred - target[half:]) ** 2).sum(0)
        total = ((target[half:] - target[half:].mean(0)) ** 2).sum(0) + 1e-12
        structure = e_str(m0)
        own = dec(structure, a)
        shift = torch.roll(torch.arange(len(rows)), 1)
        swapped = dec(structure, a[shift])
        return {
            "images": len(rows),
            "colour_r2_upper_rgb_lower_rgb": [round(float(v), 3) for v in 1 - resid / total],
            "appearance_effect_l1": round(float((own - swapped).abs().mean()), 4),
            "real_pair_l1": round(float((x - x[shift]).abs().mean()), 4),
            "reconstruction_l1": round(float((own - x).abs().mean()), 4),
            "mean_image_l1": round(float((x.mean(0, keepdim=True) - x).abs().mean()), 4),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    cfg = load_config(args.params)
    root = Path(cfg.data.root)
    train_df = load_prepared(root / "prepared" / args.dataset, splits=("train",))["train"]
    models = Path("models") / args.dataset
    report = diagnose(train_df, root / "meshes" / args.dataset, models / "baseline" / "encoder.pt",
                      models / "pretrain" / "generator.pt", cfg.data.height, cfg.data.width,
                      list(cfg.mesh.angles), args.images)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

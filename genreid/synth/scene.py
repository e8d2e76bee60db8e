"""Camera nuisance: each camera has its own background, light, colour cast, framing, blur,
resolution and noise; images add occluders and small per-shot jitter.

Everything is drawn from numpy generators seeded by (dataset seed, camera) or (dataset seed,
image), so an image is the same whichever batch or run renders it (resume gives identical
bytes)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from genreid.synth.appearance import BOTTOMS, TOPS
from genreid.utils import exactmath


@dataclass(frozen=True)
class CameraLook:
    cast: np.ndarray  # (3,) RGB gain (illumination colour)
    brightness: float
    light_dir: np.ndarray  # (3,) body frame, towards the light
    ambient: float
    diffuse: float
    blur: float  # Gaussian sigma in pixels at the stored size
    resample: float  # <1: the camera's real resolution is this fraction of the stored size
    fill: float  # mean fraction of the image height a person spans
    yaw: float  # degrees: the direction people mostly walk in front of this camera
    noise: float
    jpeg_quality: int
    backgrounds: tuple[np.ndarray, ...]  # (Hc, Wc, 3) float32 canvases larger than an image: its scenes


def _smooth(a: np.ndarray, passes: int = 2) -> np.ndarray:
    for _ in range(passes):
        a = (a + np.roll(a, 1, 0) + np.roll(a, -1, 0) + np.roll(a, 1, 1) + np.roll(a, -1, 1)) / 5
    return a


def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A street-like canvas: wall with windows/doors/signs above a tiled floor, textured."""
    hc, wc = int(1.5 * height), 4 * width
    horizon = int(rng.uniform(0.45, 0.75) * hc)
    wall = rng.uniform(0.35, 0.75) + rng.uniform(-0.05, 0.05, 3)
    floor = rng.uniform(0.25, 0.55) + rng.uniform(-0.03, 0.03, 3)
    rows = np.linspace(0, 1, hc)[:, None, None]
    img = np.where(rows < horizon / hc, wall * (0.85 + 0.3 * rows), floor * (0.8 + 0.3 * rows))
    img = np.broadcast_to(img, (hc, wc, 3)).copy()
    things = list(TOPS) + list(BOTTOMS)  # some signs and doors in clothing colours: colour is no shortcut
    for _ in range(int(rng.integers(4, 10))):
        h, w = int(rng.uniform(0.08, 0.45) * horizon), int(rng.uniform(0.08, 0.3) * wc)
        top, left = int(rng.integers(0, max(1, horizon - h))), int(rng.integers(0, max(1, wc - w)))
        if rng.random() < 0.15:
            colour = np.asarray(things[rng.integers(len(things))])
        else:  # muted: windows, doors, shop fronts
            colour = rng.uniform(0.2, 0.8) + rng.uniform(-0.06, 0.06, 3)
        img[top:top + h, left:left + w] = colour * rng.uniform(0.6, 1.0)
    for k in range(int(rng.integers(3, 8))):  # floor tile lines, denser towards the horizon
        r = horizon + int((hc - horizon) * (k / 8) * np.sqrt(k / 8))  # (k/8)^1.5: sqrt is exact, pow is not
        img[r:r + 1] *= 0.8
    for _ in range(int(rng.integers(0, 4))):  # poles
        c = int(rng.integers(0, wc - 3))
        img[: int(rng.uniform(0.5, 1.0) * hc), c:c + int(rng.integers(2, 5))] = rng.uniform(0.1, 0.6, 3)
    img += rng.normal(0, 0.03, img.shape)
    return np.clip(_smooth(img), 0, 1).astype(np.float32)


# Domain b (the UDA demo's target, ``data.synthetic_b``): every camera of domain a's draw, then darker
# (exposure x0.75), a bluish illumination (RGB gain below), 2x the sensor noise, +0.5 px blur and
# darker, blue-tinted scenes: a shift a source-trained encoder visibly suffers from (README, UDA).
DOMAIN_B = {"exposure": 0.75, "tint": (0.8, 0.95, 1.2), "noise": 2.0, "blur": 0.5, "scene_gain": 0.75}


def domain_b(look: CameraLook) -> CameraLook:
    """Domain b's version of a domain-a camera (:data:`DOMAIN_B`)."""
    tint = np.asarray(DOMAIN_B["tint"])
    scenes = tuple((bg * DOMAIN_B["scene_gain"] * tint).clip(0, 1).astype(np.float32) for bg in look.backgrounds)
    return replace(look, cast=look.cast * tint, brightness=look.brightness * DOMAIN_B["exposure"],
                   noise=look.noise * DOMAIN_B["noise"], blur=look.blur + DOMAIN_B["blur"], backgrounds=scenes)


def make_camera_looks(seed: int, num_cameras: int, height: int, width: int, colour_cast: float,
                      blur_max: float, scenes_per_camera: int = 6, domain: str = "a") -> list[CameraLook]:
    """Per-camera nuisance. Backgrounds come from one pool of street scenes shared by all
    cameras (as Market-1501's cameras overlook one campus): each camera sees a few of them,
    through its own light, colour cast, exposure, resolution and blur. ``domain`` b transforms
    every camera after the same draws (:func:`domain_b`), so domain a is untouched by it."""
    if domain not in ("a", "b"):
        raise ValueError(f"domain must be 'a' or 'b', got {domain!r}")
    pool_rng = np.random.default_rng([seed, 5])
    pool = [make_background(pool_rng, height, width) for _ in range(2 * num_cameras)]
    looks = []
    for cam in range(num_cameras):
        rng = np.random.default_rng([seed, 2, cam])
        direction = rng.normal(0, 1, 3)
        cast = 1.0 + colour_cast * direction / max(np.abs(direction).max(), 1e-6)
        light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(0.2, 1.0), rng.uniform(0.4, 1.0)])
        scenes = rng.choice(len(pool), size=min(scenes_per_camera, len(pool)), replace=False)
        looks.append(CameraLook(
            cast=cast, brightness=float(rng.uniform(0.85, 1.1)), light_dir=light,
            ambient=float(rng.uniform(0.35, 0.55)), diffuse=float(rng.uniform(0.45, 0.7)),
            blur=float(rng.uniform(0.0, blur_max)), resample=float(rng.uniform(0.5, 1.0)),
            fill=float(rng.uniform(0.84, 0.96)), yaw=float(rng.uniform(0, 360)), noise=float(rng.uniform(0.005, 0.02)),
            jpeg_quality=int(rng.integers(80, 96)), backgrounds=tuple(pool[i] for i in sorted(scenes))))
    return [domain_b(lk) for lk in looks] if domain == "b" else looks


def background_crop(look: CameraLook, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random window of one of the camera's scenes (people pass at different places)."""
    canvas = look.backgrounds[int(rng.integers(len(look.backgrounds)))]
    hc, wc, _ = canvas.shape
    top, left = int(rng.integers(0, hc - height + 1)), int(rng.integers(0, wc - width + 1))
    crop = canvas[top:top + height, left:left + width]
    return crop[:, ::-1].copy() if rng.random() < 0.5 else crop.copy()


def draw_occluder(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint a car/bench from the bottom, a passer-by from a side, or a pole; returns its mask."""
    h, w, _ = img.shape
    mask = np.zeros((h, w), dtype=bool)
    kind = rng.choice(["bottom", "side", "pole"], p=[0.45, 0.35, 0.2])
    if kind == "bottom":
        top = int(h * rng.uniform(0.6, 0.85))
        left, right = sorted(rng.integers(0, w + 1, 2)) if rng.random() < 0.4 else (0, w)
        mask[top:, left:max(right, left + w // 3)] = True
    elif kind == "side":
        band = int(w * rng.uniform(0.2, 0.4))
        mask[int(h * rng.uniform(0.0, 0.3)):, :band] = True
        if rng.random() < 0.5:
            mask = mask[:, ::-1]
    else:
        c, half = int(rng.integers(w // 5, 4 * w // 5)), max(1, int(w * rng.uniform(0.04, 0.08)))
        mask[:, c - half:c + half] = True
    colour = np.asarray(TOPS[rng.integers(len(TOPS))]) if rng.random() < 0.5 else rng.uniform(0, 1, 3)
    shade = np.linspace(1.1, 0.7, h)[:, None, None] if kind != "pole" else np.ones((h, 1, 1))
    img[mask] = np.broadcast_to(np.clip(colour * shade, 0, 1), img.shape)[mask]
    return mask


def _gaussian_taps(n: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blur along an axis of length ``n`` with reflected borders, as filter taps."""
    radius = min(int(np.ceil(3 * sigma)), n - 1)
    offsets = np.arange(-radius, radius + 1)
    kernel = exactmath.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / exactmath.ordered_sum(kernel, 0)
    index = np.arange(n)[:, None] + offsets[None, :]
    index = np.abs(index)
    index = np.where(index > n - 1, 2 * (n - 1) - index, index)
    return index, np.broadcast_to(kernel, index.shape)


def _downsample_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Antialiased linear (triangle filter) resampling from ``n_in`` to ``n_out`` <= ``n_in`` samples."""
    scale = n_in / n_out
    centre = scale * (np.arange(n_out) + 0.5)
    first = np.maximum((centre - scale + 0.5).astype(np.int64), 0)
    taps = int(np.ceil(2 * scale)) + 2
    index = first[:, None] + np.arange(taps)[None, :]
    weight = np.maximum(0.0, 1.0 - np.abs((index + 0.5 - centre[:, None]) / scale))
    weight = np.where(index < n_in, weight, 0.0)
    index = np.minimum(index, n_in - 1)
    return index, weight / exactmath.ordered_sum(weight, 1)[:, None]


def _upsample_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation from ``n_in`` to ``n_out`` >= ``n_in`` samples (pixel centres aligned)."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    lower = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    frac = src - lower
    return np.stack([lower, np.minimum(lower + 1, n_in - 1)], 1), np.stack([1.0 - frac, frac], 1)


def camera_effects(img: np.ndarray, look: CameraLook, rng: np.random.Generator) -> np.ndarray:
    """Illumination cast and exposure, the camera's resolution, lens blur and sensor noise:
    float (H,W,3) scene -> uint8 photo. Float64 filters with a fixed summation order
    (:func:`genreid.utils.exactmath.apply_taps`): the same bytes on every machine."""
    h, w, _ = img.shape
    gain = look.cast * look.brightness * rng.uniform(0.92, 1.08)
    x = np.asarray(img, dtype=np.float64) * gain
    if look.resample < 0.95:
        small_h, small_w = max(8, round(h * look.resample)), max(4, round(w * look.resample))
        x = exactmath.apply_taps(x, *_downsample_taps(h, small_h), axis=0)
        x = exactmath.apply_taps(x, *_downsample_taps(w, small_w), axis=1)
        x = exactmath.apply_taps(x, *_upsample_taps(small_h, h), axis=0)
        x = exactmath.apply_taps(x, *_upsample_taps(small_w, w), axis=1)
    sigma = look.blur * rng.uniform(0.7, 1.3)
    if sigma > 0.2:
        x = exactmath.apply_taps(x, *_gaussian_taps(h, sigma), axis=0)
        x = exactmath.apply_taps(x, *_gaussian_taps(w, sigma), axis=1)
    out = x + rng.normal(0, look.noise, (h, w, 3))
    return np.floor(np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

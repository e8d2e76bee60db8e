"""Identity = body shape + clothing drawn from palettes shared by everybody.

Garment colours come from small shared palettes (``palette_size`` entries each), so many
people wear the same red top: colour alone does not identify, the combination (top, bottom,
shoes, hair, skin, sleeve/leg length, pattern, bag, body shape) does. Body regions come from
the skinning weights (argmax joint) and rest-pose geometry, which works unchanged for the
official SMPL mesh and the procedural stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genreid.utils import exactmath

# master palettes (RGB in [0, 1]); a dataset uses the first ``palette_size`` of each
TOPS = ((0.90, 0.90, 0.88), (0.10, 0.10, 0.11), (0.12, 0.16, 0.35), (0.70, 0.12, 0.12), (0.50, 0.50, 0.50),
        (0.55, 0.70, 0.85), (0.20, 0.45, 0.25), (0.85, 0.75, 0.20), (0.85, 0.55, 0.65), (0.45, 0.30, 0.18),
        (0.40, 0.22, 0.50), (0.85, 0.45, 0.15), (0.80, 0.72, 0.58), (0.10, 0.50, 0.50), (0.45, 0.10, 0.15),
        (0.45, 0.45, 0.20))
BOTTOMS = ((0.15, 0.20, 0.35), (0.10, 0.10, 0.11), (0.40, 0.40, 0.42), (0.70, 0.62, 0.45), (0.45, 0.55, 0.70),
           (0.35, 0.25, 0.15), (0.85, 0.85, 0.82), (0.35, 0.38, 0.22), (0.10, 0.12, 0.25), (0.55, 0.12, 0.12),
           (0.25, 0.25, 0.27), (0.88, 0.84, 0.72), (0.15, 0.35, 0.20), (0.35, 0.20, 0.40), (0.80, 0.50, 0.60),
           (0.75, 0.40, 0.15))
SHOES = ((0.08, 0.08, 0.08), (0.92, 0.92, 0.92), (0.40, 0.25, 0.12), (0.45, 0.45, 0.48), (0.12, 0.15, 0.35),
         (0.65, 0.12, 0.12), (0.75, 0.68, 0.52), (0.15, 0.30, 0.18))
HAIR = ((0.05, 0.04, 0.04), (0.18, 0.11, 0.07), (0.35, 0.22, 0.12), (0.72, 0.58, 0.34), (0.58, 0.58, 0.58),
        (0.48, 0.20, 0.10), (0.28, 0.25, 0.22), (0.85, 0.80, 0.70))
SKIN = ((0.96, 0.80, 0.69), (0.90, 0.72, 0.58), (0.80, 0.60, 0.45), (0.65, 0.45, 0.32), (0.45, 0.30, 0.20),
        (0.30, 0.20, 0.13))
BAGS = ((0.08, 0.08, 0.09), (0.40, 0.25, 0.12), (0.12, 0.16, 0.35), (0.65, 0.12, 0.12), (0.45, 0.45, 0.48),
        (0.20, 0.40, 0.22), (0.75, 0.68, 0.52), (0.85, 0.45, 0.15))
MAX_PALETTE = len(TOPS)
PATTERNS = ("plain", "stripes", "two_tone")
BAG_KINDS = ("none", "backpack", "side_bag")

# body regions
(HEAD, HAIR_SHORT, HAIR_LONG, TORSO_UPPER, TORSO_LOWER, UPPER_ARM, FOREARM, HAND, PELVIS, THIGH, SHIN,
 FOOT, NECK) = range(13)
_REGION_OF_JOINT = {15: HEAD, 12: NECK, 0: PELVIS, 3: TORSO_LOWER, 6: TORSO_UPPER, 9: TORSO_UPPER, 13: TORSO_UPPER,
                    14: TORSO_UPPER, 16: UPPER_ARM, 17: UPPER_ARM, 18: FOREARM, 19: FOREARM, 20: HAND, 21: HAND,
                    22: HAND, 23: HAND, 1: THIGH, 2: THIGH, 4: SHIN, 5: SHIN, 7: FOOT, 8: FOOT, 10: FOOT, 11: FOOT}


@dataclass(frozen=True)
class Identity:
    """Everything that stays the same for one person across cameras."""

    betas: tuple[float, ...]
    top: int
    top2: int
    pattern: str
    stripe_width: float
    long_sleeves: bool
    bottom: int
    long_legs: bool
    shoes: int
    hair: int
    long_hair: bool
    skin: int
    bag: str
    bag_colour: int
    shade: tuple[float, ...]  # small per-person colour offsets: same palette entry, not the same dye

    def codes(self) -> list[int]:
        """Attributes as integers (stored in the ground truth for analysis, never for training)."""
        return [self.top, self.top2, PATTERNS.index(self.pattern), int(self.long_sleeves), self.bottom,
                int(self.long_legs), self.shoes, self.hair, int(self.long_hair), self.skin,
                BAG_KINDS.index(self.bag), self.bag_colour]


ATTRIBUTE_NAMES = ("top", "top2", "pattern", "long_sleeves", "bottom", "long_legs", "shoes", "hair", "long_hair",
                   "skin", "bag", "bag_colour")


def sample_identity(rng: np.random.Generator, palette_size: int) -> Identity:
    k = min(palette_size, MAX_PALETTE)
    top = int(rng.integers(k))
    top2 = int((top + 1 + rng.integers(k - 1)) % k) if k > 1 else top
    betas = np.clip(rng.standard_normal(10), -2.5, 2.5)
    return Identity(
        betas=tuple(float(b) for b in betas), top=top, top2=top2,
        pattern=str(rng.choice(PATTERNS, p=[0.6, 0.25, 0.15])), stripe_width=float(rng.uniform(0.04, 0.08)),
        long_sleeves=bool(rng.random() < 0.5), bottom=int(rng.integers(k)), long_legs=bool(rng.random() < 0.75),
        shoes=int(rng.integers(min(k, len(SHOES)))), hair=int(rng.integers(min(k, len(HAIR)))),
        long_hair=bool(rng.random() < 0.35), skin=int(rng.integers(len(SKIN))),
        bag=str(rng.choice(BAG_KINDS, p=[0.6, 0.25, 0.15])), bag_colour=int(rng.integers(min(k, len(BAGS)))),
        shade=tuple(float(x) for x in rng.uniform(-0.04, 0.04, 3)))


def body_regions(weights: np.ndarray, template: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Region code per vertex from skinning weights and the rest-pose template."""
    region = np.array([_REGION_OF_JOINT[j] for j in weights.argmax(1)])
    head = region == HEAD
    top_y, hy = template[head, 1].max(), template[:, 1] - joints[15, 1]
    rel = hy / max(top_y - joints[15, 1], 1e-6)
    zc = exactmath.ordered_sum(template[head, 2], 0) / head.sum()  # fixed summation order
    depth = np.ptp(template[head, 2])
    back = template[:, 2] < zc - 0.15 * depth
    region[head & ((rel > 0.6) | (back & (rel > 0.15)))] = HAIR_SHORT
    region[(head | (region == NECK)) & (template[:, 2] < zc) & (region != HAIR_SHORT)] = HAIR_LONG
    return region


def vertex_colours(identity: Identity, regions: np.ndarray, template: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(V, 3) colours of one person in its rest pose (patterns follow the rest-pose height)."""
    shade = np.asarray(identity.shade)
    top, top2 = np.asarray(TOPS[identity.top]) + shade, np.asarray(TOPS[identity.top2]) + shade
    skin, hair = np.asarray(SKIN[identity.skin]), np.asarray(HAIR[identity.hair])
    col = np.tile(skin, (len(regions), 1))
    is_top = np.isin(regions, [TORSO_UPPER, TORSO_LOWER, UPPER_ARM] + ([FOREARM] if identity.long_sleeves else []))
    col[is_top] = top
    y = template[:, 1]
    if identity.pattern == "stripes":
        band = np.floor((y - joints[3, 1]) / identity.stripe_width).astype(int) % 2 == 1
        col[is_top & band & np.isin(regions, [TORSO_UPPER, TORSO_LOWER])] = top2
    elif identity.pattern == "two_tone":
        col[is_top & (y > joints[6, 1] + 0.04)] = top2
    bottom = np.isin(regions, [PELVIS, THIGH] + ([SHIN] if identity.long_legs else []))
    col[bottom] = np.asarray(BOTTOMS[identity.bottom]) + shade
    col[regions == FOOT] = SHOES[identity.shoes]
    col[regions == HAIR_SHORT] = hair
    if identity.long_hair:
        col[regions == HAIR_LONG] = hair
    return np.clip(col, 0.0, 1.0).astype(np.float32)

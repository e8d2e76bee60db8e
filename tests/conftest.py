"""Shared fixtures. Tests never reach the network: outbound sockets to anything but the
loopback are refused for the whole session. The toy datasets the trainer tests use are built
here (fixtures ``make_prepared``, ``make_random_prepared``, ``make_toy``, ``gan_toy``, ``tiny_widths``)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genreid.config.sections.model import GeneratorWidths
from genreid.data.manifest import manifest_path, write_manifest
from genreid.meshes.store import RenderWriter
from genreid.models.generator import build_generator, save_generator
from genreid.models.id_encoder import build_encoder, save_encoder

_real_connect = socket.socket.connect


def _guarded_connect(self, address):  # pragma: no cover - exercised only on misuse
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
        return _real_connect(self, address)
    raise RuntimeError(f"tests must not reach the network (tried {address!r})")


def pytest_collection_modifyitems(config, items):
    """Slow (end-to-end) tests first: under pytest-xdist (`make test` runs -n auto) each starts on its
    own worker while the short tests fill the others, instead of a 4-minute test starting last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: order kept otherwise


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    socket.socket.connect = _guarded_connect
    yield
    socket.socket.connect = _real_connect


@pytest.fixture(autouse=True)
def _few_threads(monkeypatch):
    """Keep each test to the machine's 2 cores and make runs repeatable."""
    import torch

    torch.set_num_threads(2)
    yield


# --- toy data: generated here, nothing fetched -------------------------------------------------
# A prepared dataset for the warm-up: people as two coloured blocks, a colour cast and noise per camera.
def _block_image(rng: np.random.Generator, top: np.ndarray, bottom: np.ndarray, cast: np.ndarray, h: int, w: int):
    img = np.full((h, w, 3), 100.0) + rng.normal(0, 8, (h, w, 3))
    x0, x1 = w // 4 + int(rng.integers(-1, 2)), w - w // 4 + int(rng.integers(-1, 2))
    img[h // 8:h // 2, x0:x1] = top
    img[h // 2:h - h // 8, x0:x1] = bottom
    return np.clip(img + cast + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def _prepared_split(root: Path, split: str, rng: np.random.Generator, pids: range, cams: int, per_cam: int,
           h: int, w: int) -> pd.DataFrame:
    casts = rng.normal(0, 15, (cams, 3))
    rows = []
    for pid in pids:
        top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        for cam in range(cams):
            for k in range(per_cam):
                rel = Path("images") / split / f"{pid:04d}_c{cam}_{k}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_block_image(rng, top, bottom, casts[cam], h, w)).save(root / rel)
                rows.append({"path": str(rel), "pid": pid, "camid": cam, "split": split, "sha1": "-"})
    return pd.DataFrame(rows)


def _make_prepared(root: str | Path, train_ids: int = 8, val_ids: int = 4, cams: int = 2, per_cam: int = 3,
                  h: int = 32, w: int = 16, seed: int = 0) -> Path:
    """Write ``root`` as a prepared dataset (train/val/query/gallery manifests) and return it."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    frames = {"train": _prepared_split(root, "train", rng, range(train_ids), cams, per_cam, h, w),
              "val": _prepared_split(root, "val", rng, range(1000, 1000 + val_ids), cams, per_cam, h, w)}
    test = _prepared_split(root, "test", rng, range(2000, 2000 + val_ids), cams, per_cam, h, w)
    frames["query"] = test[test["camid"] == 0].assign(split="query")
    frames["gallery"] = test[test["camid"] != 0].assign(split="gallery")
    for split, df in frames.items():
        write_manifest(df, manifest_path(root, split))
    return root


def _make_random_prepared(root: Path, counts: dict[str, int] | None = None, size: tuple[int, int] = (64, 32)) -> Path:
    """A prepared folder in the manifest format with random JPEGs (Market-style names, real sha1s),
    ``counts`` images per split (default train 10, val 3, others 2): the meshes-stage tests' input."""
    import hashlib

    counts = counts or {"train": 10, "val": 3}
    rng = np.random.default_rng(0)
    for split in ("train", "val", "query", "gallery"):
        rows = []
        for i in range(counts.get(split, 2)):
            rel = f"images/{split}/{i:04d}_c{i % 3 + 1}s1_000{i}_00.jpg"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
            rows.append({"path": rel, "pid": i // 2, "camid": i % 3, "split": split,
                         "sha1": hashlib.sha1(path.read_bytes()).hexdigest()})
        write_manifest(pd.DataFrame(rows), root / f"manifest_{split}.csv")
    return root


@pytest.fixture(scope="session")
def make_random_prepared():
    """Builder of a random-JPEG prepared folder (shared by the meshes-stage tests)."""
    return _make_random_prepared


@pytest.fixture(scope="session")
def make_prepared():
    """Builder of a prepared dataset folder (train/val/query/gallery manifests + images)."""
    return _make_prepared


# A paired dataset for the generator/joint trainers: coloured people, silhouette renders at every
# angle, an untrained ResNet-18 encoder checkpoint and a tiny-width generator checkpoint.
TOY_ANGLES = [0, 45, 90, 135, 180, 225, 270, 315]
TINY_WIDTHS = GeneratorWidths(str_channels=[4, 8, 8, 8], str_out=8, dec_channels=[8, 4], mlp_dim=8,
                              dis_channels=[4, 8], dis_scales=2, res_blocks=2)
def _person(rng: np.random.Generator, top: np.ndarray, bottom: np.ndarray, h: int, w: int) -> np.ndarray:
    img = np.full((h, w, 3), 90.0) + rng.normal(0, 6, (h, w, 3))
    x0, x1 = w // 4, w - w // 4
    img[h // 8:h // 2, x0:x1] = top + rng.normal(0, 8, 3)
    img[h // 2:h - h // 8, x0 + 1:x1 - 1] = bottom + rng.normal(0, 8, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _silhouette(angle: int, h: int, w: int, shift: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    half = max(1.0, (w / 4) * (0.55 + 0.45 * abs(np.cos(np.deg2rad(angle)))))
    cx = w / 2 + shift * np.sin(np.deg2rad(angle))
    body = (np.abs(xx - cx) < half) & (yy > h // 10) & (yy < h - h // 10)
    shade = 120 + 100 * (xx - cx) / (2 * half)
    return np.where(body, np.clip(shade, 30, 230), 0).astype(np.uint8)


def _people(img_dir: Path, rng: np.random.Generator, pids: range, per_id: int, h: int, w: int) -> pd.DataFrame:
    rows = []
    for pid in pids:
        top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        for k in range(per_id):
            path = img_dir / f"{pid:03d}_{k}.png"
            Image.fromarray(_person(rng, top, bottom, h, w)).save(path)
            rows.append({"path": str(path), "pid": pid, "camid": k % 3})
    return pd.DataFrame(rows)


def _make_toy(root: Path, ids: int = 6, per_id: int = 4, h: int = 32, w: int = 16, seed: int = 0,
             embedding_dim: int = 16, val_ids: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    df = _people(img_dir, rng, range(ids), per_id, h, w)
    val_df = _people(img_dir, rng, range(100, 100 + val_ids), per_id, h, w)
    render_dir = root / "meshes"
    n = len(df)
    writer = RenderWriter(render_dir, "train", n, TOY_ANGLES, h, w, chunk_size=n, signature={"toy": seed})
    for k in writer.open():
        sl = writer.chunk_rows(k)
        renders = {a: np.stack([_silhouette(a, h, w, 1 + i % 3) for i in range(sl.start, sl.stop)]) for a in TOY_ANGLES}
        smpl = {"betas": np.zeros((n, 10), np.float32), "pose": np.zeros((n, 72), np.float32),
                "cam": np.zeros((n, 3), np.float32)}
        writer.write_chunk(k, renders, smpl)
    writer.finalize(pd.DataFrame({"row": range(n), "path": df["path"], "pid": df["pid"], "camid": df["camid"]}))
    enc_path = root / "encoder.pt"
    save_encoder(build_encoder("resnet18", "none", "avg", embedding_dim, 1, 4), enc_path, {"epoch": 0})
    return {"df": df, "val_df": val_df, "render_dir": render_dir, "encoder": enc_path, "height": h, "width": w}


@pytest.fixture(scope="session")
def make_toy():
    """Builder of a fresh paired toy in a folder of the test's choosing."""
    return _make_toy


@pytest.fixture(scope="session")
def tiny_widths() -> GeneratorWidths:
    return TINY_WIDTHS


@pytest.fixture(scope="session")
def gan_toy(tmp_path_factory) -> dict:
    """The paired toy (read-only: tests write their outputs elsewhere) with a tiny generator checkpoint."""
    import torch

    root = tmp_path_factory.mktemp("gan_toy")
    data = _make_toy(root)
    torch.manual_seed(0)
    e_str, dec, dis = build_generator(TINY_WIDTHS, 512, 4)
    fresh = {"g": torch.optim.Adam([*e_str.parameters(), *dec.parameters()]).state_dict(),
             "d": torch.optim.Adam(dis.parameters()).state_dict()}
    save_generator(root / "generator.pt", e_str, dec, dis, optimisers=fresh)
    data["generator"] = root / "generator.pt"
    return data


@pytest.fixture
def spy_amp_modules(monkeypatch):
    """Patch the ``AmpContext`` every stage builds (in ``genreid.engine.setup.start_run``) so every network
    it wraps is recorded as (activation_checkpointing flag, wrapped module); call it, get the record list."""
    import genreid.engine.setup as setup

    def install() -> list:
        built: list = []
        real = setup.AmpContext

        class Spy(real):
            def module(self, m):
                built.append((self.activation_checkpointing, super().module(m)))
                return built[-1][1]

        monkeypatch.setattr(setup, "AmpContext", Spy)
        return built

    return install

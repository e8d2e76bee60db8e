"""``genreid doctor``: one line per check, one line per problem saying what to do.

Blocking problems (exit code 1) are those that stop the configured pipeline: broken core
packages, invalid params, a configured dataset or model file that is missing. Optional pieces
that the current params do not use are reported as ``info``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from genreid.errors import GenreidError

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"


@dataclass
class Check:
    status: str
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"[{self.status:>4}] {self.name}: {self.detail}"
        return text + (f"\n        -> {self.fix}" if self.fix else "")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_packages() -> list[Check]:
    out = []
    for dist, why in (("torch", "core"), ("torchvision", "backbones"), ("easypytorch3d", "rendering"),
                      ("faiss-cpu", "kNN for Jaccard distance"), ("dvc", "pipeline"), ("smplx", "SMPL skinning")):
        v = _version(dist)
        if v is None and dist == "faiss-cpu":
            v = _version("faiss-gpu") or _version("faiss-gpu-cu12")
        out.append(Check(OK, dist, v) if v else
                   Check(FAIL, dist, f"not installed ({why})", "run `make env` (scripts/bootstrap.sh)"))
    tv = _version("torch") or ""
    if tv and not tv.startswith("2.12."):
        out.append(Check(WARN, "torch version", f"{tv}: the prebuilt PyTorch3D ops load only with torch 2.12.x",
                         "reinstall from requirements.lock (`rm -rf .venv && make env`)"))
    return out


def check_accelerators() -> list[Check]:
    import torch

    out = []
    if torch.cuda.is_available():
        out.append(Check(OK, "cuda", torch.cuda.get_device_name(0)))
    else:
        out.append(Check(INFO, "cuda", "not available; everything runs on CPU (slower at paper scale)"))
    try:
        import faiss

        ngpu = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        out.append(Check(OK if ngpu else INFO, "faiss-gpu",
                         f"{ngpu} GPU(s)" if ngpu else "CPU index only (install the `gpu` extra on CUDA machines)"))
    except Exception as exc:  # noqa: BLE001
        out.append(Check(FAIL, "faiss", f"import failed: {exc}", "reinstall faiss-cpu from requirements.lock"))
    return out


def check_pytorch3d_ops() -> Check:
    try:
        import torch
        from pytorch3d.renderer import FoVOrthographicCameras, MeshRasterizer, RasterizationSettings
        from pytorch3d.structures import Meshes

        verts = torch.tensor([[[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [0.0, 0.5, 1.0]]])
        faces = torch.tensor([[[0, 1, 2]]])
        rast = MeshRasterizer(cameras=FoVOrthographicCameras(),
                              raster_settings=RasterizationSettings(image_size=8))
        frags = rast(Meshes(verts=verts, faces=faces))
        covered = int((frags.pix_to_face >= 0).sum())
        if covered == 0:
            return Check(FAIL, "pytorch3d ops", "rasteriser ran but drew nothing",
                         "reinstall easypytorch3d==0.7.9.post1 with torch 2.12.x")
        return Check(OK, "pytorch3d ops", f"compiled rasteriser works ({covered} pixels)")
    except Exception as exc:  # noqa: BLE001
        return Check(FAIL, "pytorch3d ops", f"compiled ops do not load: {exc}",
                     "torch must be 2.12.x for easypytorch3d 0.7.9.post1: `rm -rf .venv && make env`")


def check_params(path: str):
    from genreid.config import load_config

    try:
        return load_config(path), Check(OK, "params", f"{path} is valid")
    except GenreidError as exc:
        lines = [ln.strip() for ln in exc.problem.splitlines() if ln.strip()]
        detail = lines[0] + (" " + "; ".join(lines[1:6]) if len(lines) > 1 else "")
        return None, Check(FAIL, "params", detail, exc.fix or "fix the keys listed by "
                           f"`genreid config validate {path}`")


def check_datasets(cfg) -> list[Check]:
    out = []
    root = Path(cfg.data.root)
    for name in ("synthetic", "market1501", "dukemtmc", "msmt17"):
        used = name in cfg.datasets or name == cfg.warmup.source_dataset  # UDA: the labelled source too
        prepared = root / "prepared" / name
        try:
            from genreid.data.status import dataset_status

            src = None if name == "synthetic" else getattr(cfg.data, name)
            ok, message = dataset_status(name, prepared_dir=str(prepared), source=src and src.archive,
                                         url=src and src.url,
                                         canonical_size=cfg.data.expected_counts == "canonical")
        except ImportError:
            ok, message = prepared.is_dir(), f"prepared folder {prepared} {'exists' if prepared.is_dir() else 'absent'}"
        if ok:
            out.append(Check(OK, f"dataset {name}", message))
        elif name == "synthetic":
            out.append(Check(INFO, "dataset synthetic", f"{message}; generated by `dvc repro` (no download needed)"))
        else:
            fix = _dataset_fix(name, cfg)
            out.append(Check(FAIL if used else INFO, f"dataset {name}",
                             message + ("" if used else " (not in params 'datasets': optional)"), fix))
    return out


def _dataset_fix(name: str, cfg) -> str:
    src = getattr(cfg.data, name)
    if name == "market1501":
        return (f"place Market-1501-v15.09.15.zip at {src.archive} (or set data.market1501.url to a mirror "
                "you may use); then `dvc repro prepare@market1501`")
    if name == "dukemtmc":
        return (f"DukeMTMC-reID was withdrawn by its owners and cannot be downloaded; if you hold a copy, "
                f"place DukeMTMC-reID.zip (or the unpacked folder) at {src.archive}")
    return (f"MSMT17 is distributed on request by its authors; place MSMT17_V1.tar.gz / MSMT17_V2 "
            f"(archive or folder) at {src.archive}")


def check_model_files(cfg) -> list[Check]:
    out = []
    body = cfg.mesh.body_model
    if body == "procedural":
        out.append(Check(INFO, "SMPL model", "using the procedural stand-in body (mesh.body_model: procedural)"))
    else:
        ok = Path(body).is_file()
        out.append(Check(OK if ok else FAIL, "SMPL model", f"{body} {'found' if ok else 'missing'}",
                         "" if ok else "register at smpl.is.tue.mpg.de, download SMPL_NEUTRAL.pkl and place it "
                         f"at {body}, or set mesh.body_model: procedural"))
    need_hmr = cfg.mesh.estimator in ("hmr", "auto") and any(not d.startswith("synthetic") for d in cfg.datasets)
    for label, path, origin in (("HMR weights", cfg.mesh.hmr_checkpoint, "SPIN's model_checkpoint.pt"),
                                ("SMPL mean params", cfg.mesh.smpl_mean_params, "SPIN's smpl_mean_params.npz")):
        ok = Path(path).is_file()
        status = OK if ok else (FAIL if need_hmr else INFO)
        out.append(Check(status, label, f"{path} {'found' if ok else 'missing'}"
                         + ("" if ok or need_hmr else " (only needed for mesh.estimator: hmr on real data)"),
                         "" if ok else f"download {origin} (SPIN's fetch_data.sh) and place it at {path}"))
    if cfg.model.pretrained == "imagenet":
        out.append(_imagenet_check(cfg.model.backbone))
    return out


def _imagenet_check(backbone: str) -> Check:
    """The very file :func:`genreid.models.id_encoder.imagenet_weights_path` names (the encoder loads
    that one), with its size and the hash prefix torchvision puts in its name."""
    from genreid.data.archive import file_sha256
    from genreid.models.id_encoder import imagenet_weights_path, imagenet_weights_url

    path, url = imagenet_weights_path(backbone), imagenet_weights_url(backbone)
    fix = f"download {url} and place it at {path} (or set TORCH_HOME), or set model.pretrained: none"
    if not path.is_file():
        return Check(WARN, "ImageNet weights", f"{path.name} not in the torch cache; it is fetched on first use "
                     "if online", f"offline: {fix}")
    prefix = path.stem.rsplit("-", 1)[-1]
    if path.stat().st_size < 1 << 20 or not file_sha256(path).startswith(prefix):
        return Check(FAIL, "ImageNet weights", f"{path} is damaged or another file ({path.stat().st_size} bytes, "
                     f"sha256 does not start with {prefix})", fix)
    return Check(OK, "ImageNet weights", f"{path}")


def check_resources(root: str) -> list[Check]:
    import os

    path = Path(root) if Path(root).exists() else Path(".")
    free_gb = shutil.disk_usage(path).free / 2**30
    out = [Check(OK if free_gb > 5 else WARN, "disk", f"{free_gb:.1f} GiB free at {path.resolve()}",
                 "" if free_gb > 5 else "free disk space: real datasets need 10-50 GiB with renders")]
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 2**30
        out.append(Check(OK if mem_gb > 4 else WARN, "memory", f"{mem_gb:.1f} GiB available"))
    except (ValueError, OSError):
        pass
    return out


def collect(params: str) -> list[Check]:
    checks = check_packages() + check_accelerators() + [check_pytorch3d_ops()]
    cfg, pcheck = check_params(params)
    checks.append(pcheck)
    if cfg is not None:
        checks += check_datasets(cfg) + check_model_files(cfg) + check_resources(cfg.data.root)
    return checks


def run_doctor(params: str = "params.yaml") -> int:
    checks = collect(params)
    for c in checks:
        print(c.line())
    blocking = [c for c in checks if c.status == FAIL]
    print(f"\n{len(blocking)} blocking problem(s)" if blocking else "\nno blocking problems")
    return 1 if blocking else 0

"""GPU check (``scripts/gpu_check.sh``): device name, images/s and peak memory of one iteration of each
stage at the paper profile, with ``runtime.amp`` off / bf16 and ``runtime.channels_last`` off / on,
in deterministic mode and (some rows) in the fast mode; Jaccard distance at Market-1501 training
size; PyTorch3D structure renders/s when PyTorch3D imports. Writes ``gpu_check.json`` (rewritten
after every row, so a run stopped at its time limit keeps what it measured) and ``gpu_check.md``.

``--dry`` runs everything on CPU at tiny shapes (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genreid.perf.profile import DRY, PAPER, STAGES, make_stage, measure, set_determinism

ANGLES = [0, 45, 90, 135, 180, 225, 270, 315]


def grid(dry: bool) -> list[dict[str, Any]]:
    """(stage, amp, channels_last, deterministic) rows: the 2x2 grid in deterministic mode, then the
    fast mode with amp off / channels-last off and with bf16 / channels-last on. Settings outside,
    stages inside, so a run cut by its time budget still has every stage at the first settings."""
    settings = [("off", False, True), ("bf16", False, True), ("off", True, True), ("bf16", True, True),
                ("off", False, False), ("bf16", True, False)]
    if dry:  # keeps the suite short
        settings = [settings[0], settings[1], settings[-1]]
    return [{"stage": stage, "amp": amp, "channels_last": cl, "deterministic": det}
            for amp, cl, det in settings for stage in STAGES]


def environment(device: torch.device) -> dict[str, Any]:
    env = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device),
           "cpu_threads": torch.get_num_threads(), "host": platform.machine()}
    if device.type == "cuda":
        env.update(device_name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(),
                   total_memory_mib=round(torch.cuda.get_device_properties(device).total_memory / 2**20))
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env


def stage_row(row: dict[str, Any], device: torch.device, profile, iters: int, warmup: int) -> dict[str, Any]:
    set_determinism(row["deterministic"])
    out = dict(row)
    try:
        fn, images = make_stage(row["stage"], profile, device, row["amp"], row["channels_last"])
        # stage 1 is ~16x heavier per iteration than stages 2/3 at the paper profile
        n = max(2, iters // 2) if row["stage"] == "warmup" else iters
        out.update(measure(fn, images, device, warmup=warmup, iters=n), images_per_iter=images)
    except Exception as e:  # an OOM or a missing kernel is a result, not the end of the check
        out["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        traceback.print_exc()
    finally:
        fn = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def jaccard_rows(device: torch.device, n: int, dim: int) -> list[dict[str, Any]]:
    """Jaccard distance (k1 30, k2 6) on random L2-normalised features: on the device (faiss-GPU kNN
    when faiss has GPU support, else the torch kNN) and with faiss on the CPU."""
    import faiss

    from genreid.cluster.jaccard import jaccard_distance

    faiss_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    g = torch.Generator().manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1)
    rows = []
    cases = [("cpu", "faiss")]
    if device.type == "cuda":
        cases.insert(0, ("cuda", "faiss" if faiss_gpu else "torch"))
    for where, knn in cases:
        x = feats.to(where)
        try:
            jaccard_distance(x[: min(n, 500)], knn=knn)  # warm-up (CUDA context, faiss threads)
            t0 = time.perf_counter()
            d = jaccard_distance(x, knn=knn)
            rows.append({"what": "jaccard_distance", "features": f"{n} x {dim}", "tensor_on": where, "knn": knn,
                         "faiss_gpu": faiss_gpu, "seconds": round(time.perf_counter() - t0, 3),
                         "finite": bool(np.isfinite(d).all())})
        except Exception as e:
            rows.append({"what": "jaccard_distance", "tensor_on": where, "knn": knn,
                         "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"})
        del x
    return rows


def render_row(device: torch.device, batch: int, height: int, width: int) -> dict[str, Any]:
    """Structure renders/s (all 8 angles per call) through PyTorch3D's rasteriser, if it imports."""
    try:
        import pytorch3d  # noqa: F401
    except ImportError as e:
        return {"what": "structure renders", "error": f"PyTorch3D absent ({e})"}
    try:
        from genreid.body import load_body_model
        from genreid.meshes.estimators import SmplParams
        from genreid.meshes.views import posed_vertices, render_views
        from genreid.render.camera import framing_cam

        body = load_body_model("procedural").to(device)
        rng = np.random.default_rng(0)
        betas = rng.normal(size=(batch, 10)).astype(np.float32)
        pose = (rng.normal(size=(batch, 72)) * 0.15).astype(np.float32)
        verts, _ = posed_vertices(body, SmplParams(betas, pose, np.zeros((batch, 3), np.float32)))
        params = SmplParams(betas, pose, framing_cam(verts).numpy())
        render_views(body, params, ANGLES, height, width, device)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            render_views(body, params, ANGLES, height, width, device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        return {"what": "structure renders", "size": f"{height}x{width}", "batch": batch, "angles": len(ANGLES),
                "renders_per_s": round(batch * len(ANGLES) / sorted(times)[1], 1)}
    except Exception as e:
        return {"what": "structure renders", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [f"GPU check, profile `{result['profile']}` on **{env.get('device_name')}** ({env['device']}, "
             f"torch {env['torch']}, CUDA {env.get('cuda', '-')}); `{result['command']}`", "",
             "| stage | amp | channels-last | mode | s/iter | images/s | peak memory (MiB) | finite |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["stages"]:
        mode = "deterministic" if r["deterministic"] else "fast"
        if "error" in r:
            lines.append(f"| {r['stage']} | {r['amp']} | {'on' if r['channels_last'] else 'off'} | {mode} | "
                         f"{r['error']} | | | |")
            continue
        peak = r.get("peak_mib", r.get("peak_rss_mib"))
        lines.append(f"| {r['stage']} | {r['amp']} | {'on' if r['channels_last'] else 'off'} | {mode} | "
                     f"{r['seconds_per_iter']} | {r['images_per_s']} | {peak} | {r['finite']} |")
    lines += ["", "| other | result |", "|---|---|"]
    for r in result["other"]:
        detail = r.get("error") or ", ".join(f"{k} {v}" for k, v in r.items() if k != "what")
        lines.append(f"| {r['what']} | {detail} |")
    if result.get("skipped"):
        lines += ["", f"Skipped at the time budget: {len(result['skipped'])} rows."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_check"), help="folder for gpu_check.json / .md")
    ap.add_argument("--dry", action="store_true", help="CPU, tiny shapes (the test suite's mode)")
    ap.add_argument("--iters", type=int, default=4, help="timed iterations per row (stage 1: half)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations per row")
    ap.add_argument("--budget-s", type=float, default=330.0, help="skip the remaining stage rows after this")
    ap.add_argument("--stages", nargs="*", default=list(STAGES), choices=STAGES)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    device = torch.device("cpu" if args.dry or not torch.cuda.is_available() else "cuda")
    profile = DRY if args.dry else PAPER
    if device.type == "cpu" and not args.dry:
        print("no CUDA device: running the paper profile on CPU (slow); use --dry for a quick check",
              file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"profile": profile.name, "command": " ".join(["gpu_check", *(argv or sys.argv[1:])]),
                              "environment": environment(device), "stages": [], "other": [], "skipped": []}

    def save() -> None:
        result["wall_seconds"] = round(time.perf_counter() - t_start, 1)
        (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "gpu_check.md").write_text(markdown(result))

    rows = [r for r in grid(args.dry) if r["stage"] in args.stages]
    for row in rows:
        if time.perf_counter() - t_start > args.budget_s:
            result["skipped"].append(row)
            continue
        r = stage_row(row, device, profile, args.iters, args.warmup)
        print(json.dumps(r), flush=True)
        result["stages"].append(r)
        save()
    set_determinism(False)
    n, dim = (300, 64) if args.dry else (12936, 2048)
    result["other"] += jaccard_rows(device, n, dim)
    save()
    result["other"].append(render_row(device, *((2, 32, 16) if args.dry else (64, 256, 128))))
    save()
    print(markdown(result))
    return 0 if all("error" not in r for r in result["stages"]) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Stage-2 and stage-3 iteration time and peak RSS against the authors' code, same shapes, same run.

Shapes: paper widths, 128x64 images, batch 16, CPU; the authors' ``DGNet_Trainer``
(``forward`` -> ``dis_update`` -> ``gen_update``, ``idnet_freeze`` for stage 2, their memory of 12,936
slots with K = 8192 for stage 3) against genreid's ``pretrain_iteration`` / ``joint_iteration``
(GCL and GCL+) in the default (deterministic) mode, the fast mode (``runtime.deterministic:
false``, ``runtime.channels_last: true``) and the fast mode with ``runtime.amp: bf16``. Every row runs
in its own child process (its peak RSS is its own); rows alternate between the codes so load drifts
hit all alike. ``--iters 3`` makes the reported time a true median of three timed iterations.

The authors' code is not part of this project: export their repository somewhere outside it and
point ``--authors`` at it; the child process imports it from there (on CPU: ``Tensor.cuda`` made a
no-op, ``cv2`` stubbed, torchvision's removed ``pretrained=`` flag mapped to random weights,
Adam's integer ``beta1: 0`` made a float as torch 2 requires). ::

    git -C <mirror of github.com/chenhao2345/GCL> archive HEAD | tar -x -C /tmp/authors_gcl
    .venv/bin/python benchmarks/vs_authors.py --authors /tmp/authors_gcl --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from genreid.perf.authors_code import AUTHORS_CPU_PRELUDE

ROOT = Path(__file__).resolve().parents[1]

AUTHORS = AUTHORS_CPU_PRELUDE + r"""
import time, resource
torch.manual_seed(0)
stage3 = a["stage"] == "gcl"
trainer = DGNet_Trainer(config, ft_net(), idnet_freeze=not stage3)
n, b, h, w = 12936, 16, a["height"], a["width"]
trainer.memory.features = torch.nn.functional.normalize(torch.randn(n, 512), dim=1)
trainer.memory.labels = torch.arange(n) % 751
x, m, m_nv = torch.randn(b, 3, h, w), torch.randn(b, 1, h, w), torch.randn(b, 1, h, w)
index, pid = torch.randperm(n)[:b], torch.zeros(b, dtype=torch.long)

def step(it):
    out = trainer.forward(x, m, m_nv)
    x_recon, x_nv, x_nv2recon = out[:3]
    trainer.dis_update(x, x_recon, x_nv, x_nv2recon, config)
    trainer.gen_update(x, *out, pid, index, config, it)

times = []
for it in range(a["warmup"] + a["iters"]):
    t0 = time.perf_counter()
    step(it)
    if it >= a["warmup"]:
        times.append(time.perf_counter() - t0)
print("RESULT " + json.dumps({"seconds_per_iter": sorted(times)[len(times) // 2],
                              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

OURS = r"""
import json, sys, time, resource
import torch
from genreid.perf.profile import PAPER_128, make_stage, set_determinism
a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
set_determinism(a["deterministic"])
stage = "pretrain" if a["stage"] == "pretrain" else a["stage"]
fn, _ = make_stage(stage, PAPER_128, "cpu", a["amp"], a["channels_last"])
times = []
for it in range(a["warmup"] + a["iters"]):
    t0 = time.perf_counter()
    fn()
    if it >= a["warmup"]:
        times.append(time.perf_counter() - t0)
print("RESULT " + json.dumps({"seconds_per_iter": sorted(times)[len(times) // 2],
                              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, args: dict, cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=cwd, env=env, capture_output=True,
                          text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}


VARIANTS = {  # name -> (code, settings)
    "authors": ("authors", {}),
    "genreid default": ("ours", {"deterministic": True, "channels_last": False, "amp": "off"}),
    "genreid fast": ("ours", {"deterministic": False, "channels_last": True, "amp": "off"}),
    "genreid fast + bf16": ("ours", {"deterministic": False, "channels_last": True, "amp": "bf16"}),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", type=Path, required=True, help="an export of github.com/chenhao2345/GCL")
    ap.add_argument("--stages", nargs="+", default=["pretrain", "gcl", "gcl_plus"])
    ap.add_argument("--rounds", type=int, default=3, help="child processes per (stage, code); median reported")
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="vs-authors-"))  # the authors' code runs from here
    results: dict[str, dict[str, list[dict]]] = {}
    for rnd in range(a.rounds):
        for stage in a.stages:
            for name, (code, settings) in VARIANTS.items():
                if code == "authors" and stage == "gcl_plus":
                    continue  # the released GCL+ code does not run (docs/method.md); GCL+ is compared with GCL's
                args = {"stage": "gcl" if stage == "gcl" else stage, "height": 128, "width": 64, "iters": a.iters,
                        "warmup": a.warmup, "threads": a.threads, "authors": str(a.authors.resolve()), **settings}
                r = child(AUTHORS if code == "authors" else OURS, args, scratch if code == "authors" else ROOT)
                print(json.dumps({"round": rnd, "stage": stage, "code": name, **r}), flush=True)
                results.setdefault(stage, {}).setdefault(name, []).append(r)
    lines = ["| stage | code | s/iter (median of rounds) | x authors' | peak RSS (MiB) |", "|---|---|---|---|---|"]
    summary = {}
    for stage, by_code in results.items():
        ref_rows = results.get("gcl" if stage == "gcl_plus" else stage, {}).get("authors", [])
        ref = statistics.median(r["seconds_per_iter"] for r in ref_rows if "error" not in r) if ref_rows else None
        for name, rows in by_code.items():
            ok = [r for r in rows if "error" not in r]
            if not ok:
                lines.append(f"| {stage} | {name} | {rows[0]['error']} | | |")
                continue
            t = statistics.median(r["seconds_per_iter"] for r in ok)
            mem = max(r["peak_rss_mib"] for r in ok)
            ratio = round(t / ref, 2) if ref else None
            summary[f"{stage}/{name}"] = {"seconds_per_iter": round(t, 3), "ratio": ratio, "peak_rss_mib": round(mem)}
            lines.append(f"| {stage} | {name} | {t:.2f} | {ratio if ratio is not None else '-'} | {mem:.0f} |")
    table = "\n".join(lines)
    print(table)
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "rows": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory and time of one iteration of each stage at paper shapes, one child process per row
(so each peak RSS belongs to that row alone). Not a pytest file (``make bench`` skips it): at 256x128
a row takes minutes on 2 cores. ::

    .venv/bin/python benchmarks/paper_shapes.py --profile paper --stages warmup --micro-batch 64 --amp off bf16
    .venv/bin/python benchmarks/paper_shapes.py --profile paper_128x64 --stages pretrain gcl gcl_plus --fast

Prints one JSON line per row and a markdown table at the end (``--json`` writes all rows).
CUDA rows (peak = ``torch.cuda.max_memory_allocated``) come from ``scripts/gpu_check.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, torch
from genreid.perf.profile import PROFILES, make_stage, measure, peak_rss_mib, set_determinism
a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
set_determinism(a["deterministic"])
base = peak_rss_mib()
fn, images = make_stage(a["stage"], PROFILES[a["profile"]], "cpu", a["amp"], a["channels_last"], a["micro_batch"],
                        checkpointing=a["checkpointing"])
out = measure(fn, images, "cpu", warmup=a["warmup"], iters=a["iters"])
out.update(a, rss_before_build_mib=round(base, 1))
print("RESULT " + json.dumps(out))
"""


def run_row(args: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {**args, "error": (proc.stderr.strip().splitlines() or ["killed"])[-1][:300], "rc": proc.returncode}


def table(rows: list[dict]) -> str:
    lines = ["| profile | stage | amp | channels-last | mode | checkpointing | micro-batch | s/iter | images/s "
             "| peak RSS (MiB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mode = "deterministic" if r["deterministic"] else "fast"
        cells = [r["profile"], r["stage"], r["amp"], "on" if r["channels_last"] else "off", mode,
                 "on" if r["checkpointing"] else "off", str(r["micro_batch"] or "-")]
        if "error" in r:
            cells += [r["error"], "", ""]
        else:
            cells += [str(r["seconds_per_iter"]), str(r["images_per_s"]), str(r["peak_rss_mib"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper", choices=["paper", "paper_128x64", "dry"])
    ap.add_argument("--stages", nargs="+", default=["warmup", "pretrain", "gcl", "gcl_plus"])
    ap.add_argument("--amp", nargs="+", default=["off"], choices=["off", "bf16"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--fast", action="store_true", help="runtime.deterministic false (no deterministic algorithms)")
    ap.add_argument("--checkpointing", action="store_true", help="runtime.activation_checkpointing")
    ap.add_argument("--micro-batch", type=int, default=0, help="stage 1 images per forward (0: whole batch)")
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    rows = []
    for amp in a.amp:
        for stage in a.stages:
            row = run_row({"profile": a.profile, "stage": stage, "amp": amp, "channels_last": a.channels_last,
                           "deterministic": not a.fast, "checkpointing": a.checkpointing,
                           "micro_batch": a.micro_batch if stage == "warmup" else 0,
                           "iters": a.iters, "warmup": a.warmup, "threads": a.threads})
            print(json.dumps(row), flush=True)
            rows.append(row)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

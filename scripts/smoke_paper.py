"""`make smoke-paper`: the whole dvc repro at the paper's shapes on CPU (see genreid/perf/smoke.py).

    .venv/bin/python scripts/smoke_paper.py [--recipe market1501.yaml] [--work DIR] [--keep] [--limit-gb 12]
                                            [--time-limit-min 20] [--time-advisory]

``--recipe uda/dukemtmc_to_market1501.yaml`` runs a UDA recipe (fake source and target archives).

Exit 0 when every stage ran, every dvc.lock output exists, every stage's peak memory (its process
tree's summed PSS) stayed under the limit and the whole run under the time bound. The report (JSON
and a table) goes to --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genreid.errors import GenreidError  # noqa: E402
from genreid.perf.smoke import check_recipe, markdown, run_smoke  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="market1501.yaml",
                    help="recipe under params/ (a real-dataset one; UDA recipes too), default market1501.yaml")
    ap.add_argument("--work", type=Path, help="working folder (default: a new temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder after a pass")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "genreid-smoke-report",
                    help="folder for report.json / report.md")
    ap.add_argument("--limit-gb", type=float, default=12.0,
                    help="peak memory bound of every stage's process tree (summed PSS)")
    ap.add_argument("--time-limit-min", type=float, default=20.0,
                    help="wall-time bound of the whole run in minutes (set on a quiet reference machine)")
    ap.add_argument("--time-advisory", action="store_true",
                    help="report a run over the time bound as a note instead of a failure (CI: other CPUs)")
    a = ap.parse_args(argv)
    if not (ROOT / "params" / a.recipe).is_file():
        ap.error(f"--recipe {a.recipe}: no such file under {ROOT / 'params'} (e.g. market1501.yaml, "
                 "uda/dukemtmc_to_market1501.yaml)")
    try:
        check_recipe(ROOT / "params" / a.recipe)  # before any working folder exists
    except GenreidError as exc:
        print(f"genreid: error: {exc}", file=sys.stderr)
        return 2
    work = a.work or Path(tempfile.mkdtemp(prefix="genreid-smoke-"))
    report = run_smoke(ROOT, work, limit_gb=a.limit_gb, time_limit_min=a.time_limit_min,
                       recipe=a.recipe, time_advisory=a.time_advisory)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (a.out / "report.md").write_text(markdown(report))
    print(markdown(report))
    if not report["problems"] and not a.keep and a.work is None:
        shutil.rmtree(work, ignore_errors=True)
    elif report["problems"]:
        print(f"working folder kept: {work}", file=sys.stderr)
    return 0 if not report["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())

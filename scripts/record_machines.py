"""Add the machine record to archived seeds that lack one, from the evaluation folders of the runs
that produced them.

The collect stage records each seed's CPU (its evaluation provenance's ``cpu`` block) in the seed
archive. Seeds archived before it did carry none; where the results folder of such a run still exists
(a snapshot of a worktree's ``results/``), this finds, for every method, the archived record of the
same seed and settings (the folder's ``collected/<dataset>.json`` fingerprint) whose metrics equal
that folder's metrics.json exactly, and adds the folder's machine.
Nothing is guessed: a record without a matching folder stays "machine not recorded". ::

    python scripts/record_machines.py --archive results/seeds --from <results folder> [...] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genreid.report.collect import read_metrics, read_provenance  # noqa: E402
from genreid.utils.atomic import write_json  # noqa: E402


def record_from(results: Path, archive: Path, dry_run: bool) -> list[str]:
    """Lines saying which archived records got a machine from ``results``."""
    done = []
    for metrics_path in sorted(results.glob("*/*/metrics.json")):
        dataset, method = metrics_path.parent.parent.name, metrics_path.parent.name
        if not (metrics_path.parent / "provenance.json").is_file():
            continue  # not an evaluation folder (the report's own metrics)
        machine = (read_provenance(metrics_path).get("provenance") or {}).get("cpu")
        metrics, seed = read_metrics(metrics_path)
        collected = results / "collected" / f"{dataset}.json"
        if not machine or seed is None or not collected.is_file():
            continue
        fingerprint = json.loads(collected.read_text())["fingerprint"]  # the settings that run filed under
        for record in sorted((archive / dataset / method).glob(f"{fingerprint}/seed_{seed}.json")):
            entry = json.loads(record.read_text())
            if entry.get("metrics") != metrics or entry.get("machine"):
                continue
            entry["machine"] = machine
            if not dry_run:
                write_json(record, entry)
            done.append(f"{record.relative_to(archive.parent)}: {machine.get('model')} (from {metrics_path})")
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", type=Path, default=ROOT / "results" / "seeds", help="the seed archive")
    p.add_argument("--from", dest="sources", type=Path, nargs="+", required=True,
                   help="results folders of finished runs (<dataset>/<method>/metrics.json and "
                        "collected/<dataset>.json inside)")
    p.add_argument("--dry-run", action="store_true", help="say what would be recorded, write nothing")
    args = p.parse_args(argv)
    for source in args.sources:
        for line in record_from(source, args.archive, args.dry_run):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

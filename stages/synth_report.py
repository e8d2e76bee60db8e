"""DVC stage ``synth_report``: SynthReID difficulty table and contact sheet -> results/synthetic/dataset/.

Colour-histogram and untrained-network mAP/CMC on the generated query/gallery (the default must
keep the histogram below 50% mAP), plus a contact sheet of test identities across cameras.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.layout import layout
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> None:
    from genreid.synth.difficulty import write_difficulty_report
    from genreid.utils.atomic import write_text
    from genreid.utils.provenance import run_record, timestamp

    files = layout(cfg.data.root, args.dataset)
    out_dir = Path(args.out) if args.out else files.results_dir("dataset")
    if args.dataset not in ("synthetic", "synthetic_b"):  # per dataset in dvc.yaml; the measure is SynthReID's
        write_text(out_dir / "difficulty.md",
                   f"# {args.dataset}\n\nThe difficulty report is defined for SynthReID only.\n")
        return
    dataset_dir = files.prepared / "images"
    report = write_difficulty_report(dataset_dir, out_dir, cfg.data.height, cfg.data.width, seed=cfg.seed,
                                     provenance=run_record(cfg.seed, "cpu", finished_at=timestamp()))
    for name, m in report["metrics"].items():
        print(f"{name}: mAP {m['mAP']:.1f}  R1 {m['R1']:.1f}")
    if not report["headroom_ok"]:
        print(f"warning: the colour histogram reaches {report['histogram_best_mAP']:.1f}% mAP: SynthReID is too easy "
              "(raise data.synthetic.colour_cast / occlusion_prob or lower palette_size)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0], per_dataset=False)
    parser.add_argument("--dataset", default="synthetic", help="dataset from params 'datasets' (dvc.yaml foreach)")
    parser.add_argument("--out", default=None, help="report folder (default results/<dataset>/dataset)")
    return run_stage(body, parser, argv)


if __name__ == "__main__":
    sys.exit(main())

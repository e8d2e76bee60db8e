"""DVC stage ``meshes@<ds>``: SMPL per image (HMR or SynthReID oracle) -> structure renders at every angle.

Writes data/meshes/<ds>/ (<split>_render_<angle>.npy, <split>_smpl.npz, <split>_index.csv,
<split>_done.json, config.resolved.yaml) and results/<ds>/meshes/overlay.png + alignment.json.
A rerun after an interruption continues from the last verified chunk (declare the output
folder ``persist: true`` in dvc.yaml so DVC keeps the partial work).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genreid.config import GenreidConfig
from genreid.layout import layout
from genreid.stage import run_stage, stage_parser


def body(cfg: GenreidConfig, args: argparse.Namespace) -> Path:
    from genreid.body import load_body_model
    from genreid.data.manifest import load_prepared
    from genreid.meshes.estimators import OracleEstimator, make_estimator
    from genreid.meshes.export import export_authors_layout
    from genreid.meshes.stage import run_meshes
    from genreid.utils.atomic import write_json
    from genreid.utils.device import resolve_device
    from genreid.utils.provenance import run_record, timestamp
    from genreid.utils.seeding import seed_everything

    ds, m = args.dataset, cfg.mesh
    files = layout(cfg.data.root, ds)
    prepared, out_dir, results = files.prepared, files.meshes, files.results_dir("meshes")
    seed_everything(cfg.seed, cfg.runtime.deterministic)
    device = resolve_device(cfg.runtime.device)
    tables = load_prepared(prepared, splits=tuple(m.splits))
    estimator = make_estimator(m.estimator, ds, prepared / "ground_truth.npz", m.hmr_checkpoint,
                               m.smpl_mean_params, device, m.hmr_rescale)
    body_model = load_body_model(m.body_model)
    if hasattr(body_model, "to"):
        body_model = body_model.to(device)
    masks = None
    if isinstance(estimator, OracleEstimator) and estimator.has_masks:
        def masks(paths: list[str]):
            return estimator.masks(paths, cfg.data.height, cfg.data.width)
    report = run_meshes(tables, prepared, out_dir, results, estimator, body_model, m.body_model, m.angles,
                        cfg.data.height, cfg.data.width, m.batch_size, m.splits, m.overlay_samples, cfg.seed,
                        device, masks=masks)
    if m.export_dir:
        export_authors_layout(out_dir, list(m.splits), files.authors_export(m.export_dir))
    write_json(results / "alignment.json",
               {"dataset": ds, "estimator": estimator.name, "angles": m.angles,
                "render_size": [cfg.data.height, cfg.data.width], **report,
                "provenance": run_record(cfg.seed, device, finished_at=timestamp())})
    return out_dir


def main(argv: list[str] | None = None) -> int:
    return run_stage(body, stage_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    sys.exit(main())
